"""Purified targets on disk: safetensors shards plus a JSON manifest, all written atomically.

A target folder::

    DIR/
      manifest.json               shard list with sample/token counts and sha256, plus run metadata
      shard-00000.safetensors     one shard per write_shard call
      ...

Shard layout. Samples have different response lengths, so their tokens are stored back to back
(flattened) and an offsets tensor says where each sample starts:

=====================  ===========================  ==================================================
key                    dtype, shape                 meaning
=====================  ===========================  ==================================================
``indices``            int32, (tokens, k)           top-k vocabulary ids of ``P*_t`` (padding: 0)
``log_probs``          float16, (tokens, k)         ``log P*_t`` of those ids (padding: ``-inf``)
``tail_mass``          float32, (tokens,)           target mass the top-k cap dropped
``offsets``            int64, (samples + 1,)        sample i owns tokens ``offsets[i]:offsets[i+1]``
``extra.<name>``       as given                     optional extra tensors (e.g. per-token confidence)
=====================  ===========================  ==================================================

The safetensors metadata has one key, ``seed_targets``, whose value is the JSON object
``{"format": "seed-targets", "version": "1", "top_k": k, "sample_ids": [...]}`` (ids in sample
order). One key, because safetensors writes several metadata keys in a random order: with one,
the same targets always give the same bytes (and the same content hash). See
:class:`seed.core.purify.SparseTargets` for the meaning of the three target fields.

Every file is written to a temporary file in the same folder, flushed, fsync'ed and moved into
place with ``os.replace``: a reader sees the old file or the new one, never a partial one, and a
failed write leaves no file behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.core.purify import SparseTargets
from seed.errors import DataError
from seed.files.atomic import write_atomic

if TYPE_CHECKING:
    import torch

SHARD_FORMAT = "seed-targets"
SHARD_VERSION = "1"
EXTRA_PREFIX = "extra."
METADATA_KEY = "seed_targets"


# ---------------------------------------------------------------------------------------------------
# Shards


@dataclass(frozen=True)
class TargetShard:
    """One shard in memory: flat per-token targets, per-sample offsets, and the sample ids.

    ``shard[i]`` is sample ``i``'s :class:`SparseTargets` of shape (n_i, k); ``shard.get(id)`` looks a
    sample up by id; ``shard.extra_for(name, i)`` slices a per-token extra tensor for sample ``i``.
    """

    targets: SparseTargets
    offsets: torch.Tensor
    sample_ids: list[str]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sample_ids)

    def _span(self, i: int) -> slice:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for a shard of {len(self)} samples")
        i %= len(self)
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def __getitem__(self, i: int) -> SparseTargets:
        return self.targets[self._span(i)]

    def get(self, sample_id: str) -> SparseTargets:
        return self[self.sample_ids.index(sample_id)]

    def extra_for(self, name: str, i: int) -> torch.Tensor:
        """Rows ``offsets[i]:offsets[i+1]`` of a per-token extra tensor."""
        return self.extra[name][self._span(i)]


def _flatten(
    path: Path, sparse: SparseTargets | Sequence[SparseTargets], lengths: Sequence[int] | None
) -> tuple[SparseTargets, list[int]]:
    """Stack per-sample targets into (tokens, k) fields and return them with per-sample lengths."""
    import torch

    if isinstance(sparse, SparseTargets):
        if sparse.indices.dim() == 3:
            batch, seq = sparse.indices.shape[:2]
            flat = SparseTargets(
                sparse.indices.reshape(batch * seq, -1),
                sparse.log_probs.reshape(batch * seq, -1),
                sparse.tail_mass.reshape(batch * seq),
            )
            lengths = [seq] * batch if lengths is None else list(lengths)
        elif sparse.indices.dim() == 2:
            flat = sparse
            if lengths is None:
                raise DataError(path, "flat (tokens, k) targets need per-sample lengths", field="lengths")
            lengths = list(lengths)
        else:
            raise DataError(
                path, f"indices must be (tokens, k) or (samples, seq, k), got {tuple(sparse.indices.shape)}"
            )
        return flat, lengths
    parts = list(sparse)
    if lengths is not None:
        raise DataError(
            path, "lengths are implied by a list of per-sample targets; do not pass both", field="lengths"
        )
    for i, part in enumerate(parts):
        if part.indices.dim() != 2:
            raise DataError(
                path, f"sample targets must be (tokens, k), got {tuple(part.indices.shape)}", row=i
            )
    if not parts:
        empty = SparseTargets(
            torch.zeros((0, 0), dtype=torch.int32),
            torch.zeros((0, 0), dtype=torch.float16),
            torch.zeros((0,), dtype=torch.float32),
        )
        return empty, []
    ks = {int(p.indices.shape[-1]) for p in parts}
    if len(ks) != 1:
        raise DataError(path, f"all samples must share one top_k, got {sorted(ks)}", field="top_k")
    flat = SparseTargets(
        torch.cat([p.indices for p in parts]),
        torch.cat([p.log_probs for p in parts]),
        torch.cat([p.tail_mass for p in parts]),
    )
    return flat, [int(p.indices.shape[0]) for p in parts]


def write_shard(
    path: str | Path,
    sparse: SparseTargets | Sequence[SparseTargets],
    sample_ids: list[str],
    extra: dict[str, torch.Tensor] | None = None,
    lengths: Sequence[int] | None = None,
) -> Path:
    """Write one shard of purified targets atomically (layout in the module docstring).

    Args:
        path: the ``.safetensors`` file to write; its folder is created if needed.
        sparse: either a list with one (n_i, k) :class:`SparseTargets` per sample (e.g.
            ``batch_targets[i][response_mask[i]]``), or a single flat (tokens, k) one with
            ``lengths``, or a single (samples, seq, k) one whose samples all have ``seq`` tokens.
        sample_ids: one unique id per sample, in order.
        extra: optional tensors stored as ``extra.<name>``; give per-token ones a leading
            (tokens,) dimension so that :meth:`TargetShard.extra_for` can slice them.
        lengths: tokens per sample, only with a single flat ``sparse``.

    Returns:
        ``path``.
    """
    import torch
    from safetensors.torch import save

    path = Path(path)
    flat, lengths = _flatten(path, sparse, lengths)
    ids = [str(s) for s in sample_ids]
    if len(ids) != len(lengths):
        raise DataError(path, f"{len(ids)} sample ids for {len(lengths)} samples", field="sample_ids")
    if len(set(ids)) != len(ids):
        raise DataError(path, "sample ids are not unique", field="sample_ids")
    if any(n < 0 for n in lengths) or sum(lengths) != flat.indices.shape[0]:
        raise DataError(
            path,
            f"lengths sum to {sum(lengths)} but there are {flat.indices.shape[0]} tokens",
            field="lengths",
        )
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    if lengths:
        offsets[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int64), dim=0)
    tensors = {
        "indices": flat.indices.detach().to("cpu", torch.int32).contiguous(),
        "log_probs": flat.log_probs.detach().to("cpu", torch.float16).contiguous(),
        "tail_mass": flat.tail_mass.detach().to("cpu", torch.float32).contiguous(),
        "offsets": offsets,
    }
    for name, value in (extra or {}).items():
        tensors[EXTRA_PREFIX + name] = value.detach().to("cpu").contiguous().clone()
    header = {
        "format": SHARD_FORMAT,
        "version": SHARD_VERSION,
        "top_k": int(flat.indices.shape[-1]),
        "sample_ids": ids,
    }
    return write_atomic(path, save(tensors, metadata={METADATA_KEY: json.dumps(header, sort_keys=True)}))


def _shard_header(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The ``seed_targets`` metadata object and the tensor shapes of a shard, from its header only."""
    from safetensors import safe_open

    if not path.is_file():
        raise DataError(path, "target shard not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            shapes = {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise DataError(path, f"not a readable safetensors file: {exc}") from exc
    try:
        header = json.loads(metadata[METADATA_KEY])
    except (KeyError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != SHARD_FORMAT:
        raise DataError(
            path, f"not a {SHARD_FORMAT!r} shard (no valid metadata)", field=f"{METADATA_KEY}.format"
        )
    ids = header.get("sample_ids")
    if not isinstance(ids, list) or not all(isinstance(s, str) for s in ids):
        raise DataError(path, "must be a list of strings", field=f"{METADATA_KEY}.sample_ids")
    for key in ("indices", "log_probs", "tail_mass", "offsets"):
        if key not in shapes:
            raise DataError(path, "missing tensor", field=key)
    return header, shapes


def read_shard(path: str | Path) -> tuple[TargetShard, list[str]]:
    """Load a shard written by :func:`write_shard`, checking its layout.

    Returns:
        ``(shard, sample_ids)``: ``shard[i]`` gives sample ``i``'s (n_i, k) :class:`SparseTargets`.
    """
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    header, _ = _shard_header(path)
    ids = header["sample_ids"]
    tensors = load_file(str(path))
    indices, log_probs = tensors["indices"], tensors["log_probs"]
    tail_mass, offsets = tensors["tail_mass"], tensors["offsets"]
    expected = {
        "indices": torch.int32,
        "log_probs": torch.float16,
        "tail_mass": torch.float32,
        "offsets": torch.int64,
    }
    for key, dtype in expected.items():
        if tensors[key].dtype != dtype:
            raise DataError(path, f"expected {dtype}, got {tensors[key].dtype}", field=key)
    tokens = indices.shape[0] if indices.dim() == 2 else -1
    if indices.dim() != 2 or log_probs.shape != indices.shape or tail_mass.shape != (tokens,):
        raise DataError(
            path,
            f"inconsistent shapes: indices {tuple(indices.shape)}, log_probs {tuple(log_probs.shape)}, "
            f"tail_mass {tuple(tail_mass.shape)}",
            field="indices",
        )
    if (
        offsets.shape != (len(ids) + 1,)
        or int(offsets[0]) != 0
        or int(offsets[-1]) != tokens
        or bool((offsets[1:] < offsets[:-1]).any())
    ):
        raise DataError(
            path, f"offsets must rise from 0 to {tokens} over {len(ids)} samples", field="offsets"
        )
    extra = {
        key[len(EXTRA_PREFIX) :]: value for key, value in tensors.items() if key.startswith(EXTRA_PREFIX)
    }
    shard = TargetShard(SparseTargets(indices, log_probs, tail_mass), offsets, ids, extra)
    return shard, ids
