"""What one distillation step reads: a sample with its sparse targets (`load_targets` reads them from a
targets folder of stage `purify`), stacked targets, the student's batch and the student's logits on the
response positions.

`seed.model.trainer.train_adapter` builds each step from these; `bench/` measures steps with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import DataError

if TYPE_CHECKING:
    import torch

    from seed.core.purify import SparseTargets


@dataclass(frozen=True)
class DistillSample:
    """One training sample; ``targets`` and ``response_ids`` are None in online mode. ``weight``: the
    weight of its tokens in the loss's mean (`seed.core.balance`; 1 by default)."""

    sample_id: str
    image: str
    prompt: str
    response: str
    targets: SparseTargets | None = None
    response_ids: torch.Tensor | None = None
    weight: float = 1.0


def stack_targets(samples: Sequence[DistillSample]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-sample targets into (1, tokens, k) indices (int64) and log-probs (float32)."""
    import torch

    indices = torch.cat([s.targets.indices for s in samples]).long()
    log_probs = torch.cat([s.targets.log_probs for s in samples]).float()
    return indices.unsqueeze(0), log_probs.unsqueeze(0)


def stack_weights(samples: Sequence[DistillSample]) -> torch.Tensor | None:
    """(1, tokens) float32 token weights matching `stack_targets` (each sample's weight on each of its
    target tokens), or None when every weight is 1 (the plain token mean)."""
    import torch

    if all(s.weight == 1.0 for s in samples):
        return None
    parts = [torch.full((s.targets.indices.shape[0],), float(s.weight)) for s in samples]
    return torch.cat(parts).unsqueeze(0)


def student_batch(
    processor: Any, data_dir: Path, samples: Sequence[DistillSample], where: Path | None = None
) -> dict[str, Any]:
    """`seed.model.batching.build_batch` of the samples, checked against the stored response token ids.

    ``where`` names the targets folder in the error when a rebuilt sample differs from what the
    teacher saw (another processor or tokenizer than the one used by stage `purify`).
    """
    import torch

    from seed.files.samples import IMAGES
    from seed.model.batching import build_batch
    from seed.model.generate import open_image
    from seed.model.teacher import response_token_ids

    images: dict[str, Any] = {}
    for s in samples:
        if s.image not in images:
            images[s.image] = open_image(data_dir / IMAGES / s.image)
    batch = build_batch(
        processor,
        [images[s.image] for s in samples],
        [s.prompt for s in samples],
        [s.response for s in samples],
    )
    for s, ids in zip(samples, response_token_ids(batch["labels"]), strict=True):
        if s.response_ids is not None and not torch.equal(ids, s.response_ids.to(ids.dtype)):
            raise DataError(
                where or data_dir,
                f"sample {s.sample_id}: the rebuilt response tokens differ from those the teacher saw "
                "(is this the model and processor that stage purify used?)",
                field="extra.response_ids",
            )
    return batch


def student_logits(peft_model: Any, batch: dict[str, Any], dtype: torch.dtype | None = None) -> torch.Tensor:
    """Student logits (tokens, vocab) at the response positions, adapter on, with gradients.

    ``batch`` comes from `seed.model.batching.build_batch` (labels define the positions); only these
    positions are projected onto the vocabulary.
    """
    from seed.model.teacher import response_positions

    positions = response_positions(batch["labels"])
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    if dtype is not None and "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    logits = peft_model(**inputs, use_cache=False, logits_to_keep=positions).logits
    return logits[positions] if logits.dim() == 3 else logits


def load_targets(targets_dir: str | Path) -> tuple[list[DistillSample], dict[str, Any]]:
    """Every sample of a targets folder (stage `purify`), with its sparse targets; and the manifest meta.

    The manifest's shard hashes are verified, and each shard's sidecar must list the shard's samples.
    """
    from seed.files.manifest import read_manifest
    from seed.files.shards import read_sidecar, sidecar_path
    from seed.files.targets import read_shard

    manifest = read_manifest(targets_dir)
    samples: list[DistillSample] = []
    for entry in manifest.shards:
        shard, ids = read_shard(entry.path)
        sidecar = read_sidecar(entry.path)
        if [s["id"] for s in sidecar["samples"]] != ids:
            raise DataError(
                sidecar_path(entry.path), f"samples differ from those of {entry.file}", field="samples"
            )
        if "response_ids" not in shard.extra:
            raise DataError(entry.path, "missing tensor", field="extra.response_ids")
        for i, info in enumerate(sidecar["samples"]):
            targets = shard[i]
            response_ids = shard.extra_for("response_ids", i)
            if response_ids.shape[0] != targets.indices.shape[0]:
                raise DataError(
                    entry.path, f"sample {info['id']}: token counts differ", field="extra.response_ids"
                )
            samples.append(
                DistillSample(
                    info["id"], info["image"], info["prompt"], info["response"], targets, response_ids
                )
            )
    return samples, manifest.meta


def answer_balanced(
    samples: Sequence[DistillSample], processor: Any
) -> tuple[list[DistillSample], dict[str, Any]]:
    """``samples`` weighted by `seed.core.balance.answer_weights` (``distill.balance: answer``), and a
    summary: per answer ("yes", "no") its sample count and weight, and the count of other samples.

    A sample's answer is the most likely token of its target's first position, read against the first
    tokens of "Yes" and "No" (`seed.model.generate.yes_no_token_ids`); offline targets are needed.
    """
    import dataclasses

    from seed.core.balance import ANSWERS, answer_weights, first_answers
    from seed.model.generate import yes_no_token_ids

    yes, no = yes_no_token_ids(processor)
    tops = [
        None if s.targets is None or s.targets.indices.shape[0] == 0 else int(s.targets.indices[0, 0])
        for s in samples
    ]
    answers = first_answers(tops, yes, no)
    weights = answer_weights(answers)
    weighted = [dataclasses.replace(s, weight=w) for s, w in zip(samples, weights, strict=True)]
    summary: dict[str, Any] = {"other": answers.count(None)}
    for answer in ANSWERS:
        mine = [w for a, w in zip(answers, weights, strict=True) if a == answer]
        summary[answer] = {"samples": len(mine), "weight": mine[0] if mine else 1.0}
    return weighted, summary
