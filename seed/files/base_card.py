"""The model card of a base model that `seed pretrain` writes: how to rebuild it and how to check it.

A shipped base checkpoint is only as good as its provenance. The card (``README.md`` in the model
folder, Hugging Face card format) states the command and every ``pretrain`` parameter that built
the model, the hash of the data it read and the sha256 of its weights file, so a user can rebuild it
(``dvc repro -f pretrain``) and check that the folder is the one the card describes
(`card_weights_sha256` against `weights_sha256`).

```
---                      YAML metadata (library_name, pipeline_tag, tags, seed_base: version and hashes)
---
# seed base model ...    what it is, the command, the parameters, the hashes
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from seed.errors import DataError

CARD = "README.md"
WEIGHTS = "model.safetensors"
# What `seed pretrain` reads from a world folder (the training split and, for the vocabulary only, the
# words of the SEED instructions and the POPE and MME questions); their hash is the card's data hash.
PRETRAIN_INPUTS = (
    "world.json",
    "annotations.json",
    "train",
    "images/train",
    "seed/instructions.json",
    "pope",
    "mme",
)


def weights_sha256(model_dir: str | Path) -> str:
    """sha256 of the model folder's weights file (as ``sha256sum``)."""
    from seed.files.hashing import content_hash

    return content_hash(Path(model_dir) / WEIGHTS)


def pretrain_data_hash(data_dir: str | Path) -> str:
    """sha256 over the world files that pretraining reads (`PRETRAIN_INPUTS`, each by content)."""
    from seed.files.hashing import content_hash

    data_dir = Path(data_dir)
    parts = [
        f"{name}\0{content_hash(data_dir / name)}" for name in PRETRAIN_INPUTS if (data_dir / name).exists()
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def command_flags(config: Any) -> list[str]:
    """``--flag value`` of the `seed pretrain` CLI for every top-level field, so the command does not
    depend on the params.yaml it runs next to (the nested ``model`` shape is not a flag)."""
    flags = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            continue
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        flags.append(f"--{field.name.replace('_', '-')} {shown}")
    return flags


def render_base_card(
    config: Any, summary: dict, data_dir: str | Path, out_dir: str | Path, weights_hash: str, version: str
) -> str:
    """The card's text. ``config`` is the `PretrainConfig`; ``summary`` the run's summary (parameters,
    vocabulary, final losses); ``weights_hash`` the sha256 of the weights file written beside it."""
    data_hash = pretrain_data_hash(data_dir)
    params = json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)
    command = " \\\n  ".join(["seed pretrain", f"--data {data_dir} --out {out_dir}", *command_flags(config)])
    shape = dataclasses.asdict(config.model)
    if shape != dataclasses.asdict(type(config.model)()):
        command += f"\n# with params.yaml's pretrain.model: {json.dumps(shape)}"
    meta = {
        "library_name": "transformers",
        "pipeline_tag": "image-text-to-text",
        "tags": ["seed", "llava", "synthetic-world", "hallucination"],
        "seed_base": {"version": version, "weights_sha256": weights_hash, "data_sha256": data_hash},
    }
    header = "\n".join(f"{key}: {json.dumps(value)}" for key, value in meta.items())
    return f"""---
{header}
---

# seed base model {version}

A small LLaVA-architecture vision-language model ({summary["parameters"]:,} parameters: a CLIP-style
vision tower, a 2-layer MLP projector and a Llama-style decoder, vocabulary {summary["vocab_size"]})
trained by `seed pretrain` on the project's embedded world. It is the base model that the default
pipeline distils SEED into; it is built to hallucinate the way real LVLMs do (a strong scene prior
over objects it can see), so that the effect of SEED can be measured against its controls.
It is not a model of natural images.

## How it was built

```
{command}
```

or `dvc repro -f pretrain`, which runs the same with the `pretrain` section of `params.yaml`.
Every parameter (`PretrainConfig`):

```json
{params}
```

Final training loss (EMA) {summary["final_loss_ema"]:.4f}; stage-0 (vision) loss
{"n/a" if summary["vision_final_loss"] is None else f"{summary['vision_final_loss']:.4f}"}.

## Hashes

| what | sha256 |
|---|---|
| `{WEIGHTS}` | `{weights_hash}` |
| the world files it read ({", ".join(f"`{p}`" for p in PRETRAIN_INPUTS)}) | `{data_hash}` |

Check a copy with `python -c "from seed.files.base_card import verify_card; verify_card('<folder>')"`.
"""


def card_weights_sha256(model_dir: str | Path) -> str:
    """The weights sha256 that the folder's card states (its ``seed_base`` metadata)."""
    path = Path(model_dir) / CARD
    try:
        text = path.read_text()
        front = text.split("---\n", 2)[1]
    except (OSError, IndexError) as exc:
        raise DataError(path, "no model card with a YAML header") from exc
    for line in front.splitlines():
        if line.startswith("seed_base:"):
            try:
                return json.loads(line.split(":", 1)[1])["weights_sha256"]
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(path, "unreadable seed_base metadata", field="seed_base") from exc
    raise DataError(path, "the card states no weights hash", field="seed_base")


def verify_card(model_dir: str | Path) -> str:
    """Raise `DataError` unless the card's weights hash equals the weights file's; returns the hash."""
    stated, actual = card_weights_sha256(model_dir), weights_sha256(model_dir)
    if stated != actual:
        raise DataError(
            Path(model_dir) / WEIGHTS, f"sha256 {actual} differs from the card's {stated}", field="seed_base"
        )
    return actual
