"""The model card of a SEED adapter (``README.md`` in the adapter folder, Hugging Face card format).

`seed distill` writes it from the run's summary: what SEED is, the exact purify and distill settings,
and the hashes of the base model, the data and the purified targets. `seed evaluate` writes it again
with the results of the adapter it evaluated (the table and a ``model-index``), so the folder a user
pushes to a model hub carries its method, settings and numbers. The card is derived from files that
DVC tracks, so DVC ignores it (``.dvcignore``): filling in results does not change the adapter's hash.

```
---                      YAML metadata: library_name, pipeline_tag, base_model, tags, seed_adapter
model-index: ...         (after evaluation) POPE F1 per split, MME total, CHAIR_s
---
# SEED adapter ...       what it is, how it was made, hashes, results
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARD = "README.md"
SUMMARY = "summary.json"
PAPER = (
    "Li et al., *Identify, Isolate, and Purge: Mitigating Hallucinations in LVLMs via Self-Evolving "
    "Distillation*, ACM MM 2025"
)
POPE_SPLITS_SHOWN = ("random", "popular", "adversarial", "counterfactual")


def _result(task: str, task_type: str, dataset: dict, metric: str, value: float, label: str) -> dict:
    """One Hugging Face eval result: a task, a dataset and one metric."""
    return {
        "task": {"type": task_type, "name": task},
        "dataset": dataset,
        "metrics": [{"type": metric, "value": value, "name": label}],
    }


def _model_index(name: str, metrics: dict, method: str) -> list[dict]:
    """The ``model-index`` entries (Hugging Face eval results) of one method of a metrics.json."""
    vlm = "image-text-to-text"
    results = [
        _result(
            "object hallucination (POPE)",
            vlm,
            {"type": "pope", "name": f"POPE {split}", "split": split},
            "f1",
            round(float(scores["f1"]), 4),
            "F1",
        )
        for split, scores in metrics.get("pope", {}).get(method, {}).items()
        if isinstance(scores, dict) and isinstance(scores.get("f1"), int | float)
    ]
    mme = metrics.get("mme", {}).get(method, {}).get("total")
    if isinstance(mme, int | float):
        dataset = {"type": "mme", "name": "MME existence, count, position, color"}
        results.append(
            _result("hallucination (MME subset)", vlm, dataset, "score", round(float(mme), 2), "total")
        )
    chair = metrics.get("chair", {}).get(method, {}).get("chair_s")
    if isinstance(chair, int | float):
        dataset = {"type": "chair", "name": "CHAIR captions"}
        task = "caption hallucination (CHAIR)"
        results.append(_result(task, "image-to-text", dataset, "chair_s", round(float(chair), 4), "CHAIR_s"))
    return [{"name": name, "results": results}] if results else []


def _results_table(metrics: dict) -> str:
    """Markdown: POPE F1 [95% CI] per split, MME total and CHAIR_s, base model and SEED adapter."""
    header = "| method | " + " | ".join(f"POPE {s} F1 [95% CI]" for s in POPE_SPLITS_SHOWN)
    lines = [header + " | MME total | CHAIR_s |", "|---" * (len(POPE_SPLITS_SHOWN) + 3) + "|"]
    for method in ("base", "seed"):
        if method not in metrics.get("pope", {}):
            continue
        cells = []
        for split in POPE_SPLITS_SHOWN:
            scores = metrics["pope"][method].get(split)
            if not scores:
                cells.append("-")
                continue
            low, high = scores.get("f1_ci") or (None, None)
            interval = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
            cells.append(f"{scores['f1']:.3f}{interval}")
        mme = metrics.get("mme", {}).get(method, {}).get("total")
        chair = metrics.get("chair", {}).get(method, {}).get("chair_s")
        cells.append("-" if mme is None else f"{mme:.1f}")
        cells.append("-" if chair is None else f"{chair:.3f}")
        label = "base model" if method == "base" else "base model + this adapter"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_adapter_card(summary: dict, weights_hash: str, metrics: dict | None = None) -> str:
    """The card's text from distill's ``summary`` (as written to summary.json), the sha256 of the
    adapter weights and, once evaluated, the evaluate stage's ``metrics``."""
    base = str(summary["model"])
    meta_targets = summary.get("targets_meta", {})
    purify = meta_targets.get("config") or summary.get("purify_config") or {}
    header: dict[str, Any] = {
        "library_name": "peft",
        "pipeline_tag": "image-text-to-text",
        "base_model": base,
        "tags": ["seed", "lora", "hallucination", "self-distillation", f"base_model:adapter:{base}"],
        "seed_adapter": {
            "weights_sha256": weights_hash,
            "base_model_sha256": meta_targets.get("model_hash"),
            "data_sha256": meta_targets.get("data_hash"),
            "targets_sha256": summary.get("targets_hash"),
        },
    }
    if metrics:
        index = _model_index(f"SEED adapter for {base}", metrics, "seed")
        if index:
            header["model-index"] = index
    front = "\n".join(f"{key}: {json.dumps(value)}" for key, value in header.items())
    settings = json.dumps({"purify": purify, "distill": summary.get("config", {})}, indent=2, sort_keys=True)
    if metrics:
        protocol = metrics.get("protocol", "greedy")
        results = (
            f"Protocol: {protocol} decoding, the official POPE, MME and CHAIR rules, on the evaluation "
            f"images of the world it was evaluated on (never seen in training).\n\n{_results_table(metrics)}"
        )
    else:
        results = (
            "Not evaluated yet: `seed evaluate --model <base> --adapter <this folder>` fills this section in."
        )
    return f"""---
{front}
---

# SEED adapter for `{base}`

A LoRA adapter that removes hallucinations from the vision-language model `{base}` by Self-Evolving
Distillation (SEED; {PAPER}). The model answers unlabelled image instructions itself; its answers on
the image are contrasted with its answers on a noised copy of the image, which leans on its language
prior, and the purified answers are distilled back into this adapter. Merged, it costs nothing at
inference.

## How it was made

`seed purify` then `seed distill` (the pipeline's stages of the same names) on `{summary.get("targets")}`:
{summary.get("samples")} samples, {summary.get("tokens_seen")} response tokens, {summary.get("steps")} steps, loss
{summary.get("loss_first", 0):.4f} -> {summary.get("loss_last", 0):.4f} ({summary.get("loss")}). Every setting:

```json
{settings}
```

## Hashes

| what | sha256 |
|---|---|
| the adapter weights (`adapter_model.safetensors`) | `{weights_hash}` |
| the base model folder | `{meta_targets.get("model_hash")}` |
| the unlabelled data it read | `{meta_targets.get("data_hash")}` |
| the purified targets | `{summary.get("targets_hash")}` |

## Results

{results}
"""


def write_adapter_card(adapter_dir: str | Path, metrics: dict | None = None) -> Path:
    """Write the card of the adapter folder from its summary.json (and ``metrics``); returns its path."""
    from seed.files.atomic import write_atomic
    from seed.files.hashing import content_hash
    from seed.files.inputs import read_json

    adapter_dir = Path(adapter_dir)
    summary = read_json(adapter_dir / SUMMARY)
    text = render_adapter_card(summary, content_hash(adapter_dir / "adapter_model.safetensors"), metrics)
    return write_atomic(adapter_dir / CARD, text.encode())
