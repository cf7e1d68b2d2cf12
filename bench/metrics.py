"""Pure helpers of the benchmarks: analytic FLOP counts, power-law fit, target bytes, truncation KL.

FLOP convention: a multiply-add counts 2 FLOPs, so ``x @ W`` with x (m, k) and W (k, n) costs
``2 m k n``. Only matrix products are counted (projections, attention scores and weighted sums, the
patch embedding, the vocabulary head); norms, activations, softmax and rotary embeddings are left out
(a few per cent at these widths). Attention counts the full ``seq x seq`` score matrix, as a masked
SDPA kernel computes it, not the causal half.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from seed.core.purify import SparseTargets


def matmul_flops(m: int, k: int, n: int) -> int:
    """FLOPs of one (m, k) @ (k, n) product: ``2 m k n``."""
    return 2 * m * k * n


@dataclass(frozen=True)
class DecoderShape:
    """A Llama-style decoder: ``layers`` x (attention with ``heads`` / ``kv_heads`` of ``head_dim``, gated MLP)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int


@dataclass(frozen=True)
class VisionShape:
    """A CLIP-style vision tower: patch embedding, ``layers`` x (attention, 2-layer MLP), one CLS token."""

    hidden: int
    intermediate: int
    layers: int
    patch_size: int
    image_size: int
    channels: int = 3

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def decoder_flops(shape: DecoderShape, batch: int, seq: int, logit_positions: int) -> int:
    """FLOPs of one decoder forward over ``batch`` sequences of ``seq`` tokens (padding included).

    Per token and layer: q and o (``hidden x heads*head_dim`` each), k and v (``hidden x
    kv_heads*head_dim`` each), gate, up and down (``hidden x intermediate`` each); per sequence and
    layer: scores ``Q K^T`` and ``A V``, ``2 seq^2 heads head_dim`` each. The vocabulary head runs on
    ``logit_positions`` positions only (``logits_to_keep``).
    """
    tokens = batch * seq
    q_o = 2 * shape.hidden * shape.heads * shape.head_dim
    k_v = 2 * shape.hidden * shape.kv_heads * shape.head_dim
    mlp = 3 * shape.hidden * shape.intermediate
    per_layer = 2 * tokens * (q_o + k_v + mlp) + 4 * batch * seq * seq * shape.heads * shape.head_dim
    return shape.layers * per_layer + matmul_flops(logit_positions, shape.hidden, shape.vocab)


def vision_flops(shape: VisionShape, images: int) -> int:
    """FLOPs of the vision tower on ``images`` images: patch embedding, then every layer on patches + CLS."""
    n = shape.patches + 1
    embed = matmul_flops(images * shape.patches, shape.channels * shape.patch_size**2, shape.hidden)
    per_token = 2 * (4 * shape.hidden * shape.hidden + 2 * shape.hidden * shape.intermediate)
    per_layer = images * (n * per_token + 4 * n * n * shape.hidden)
    return embed + shape.layers * per_layer


def projector_flops(vision_hidden: int, text_hidden: int, image_tokens: int) -> int:
    """LLaVA's 2-layer MLP projector on ``image_tokens`` features: vision -> text -> text width."""
    return matmul_flops(image_tokens, vision_hidden, text_hidden) + matmul_flops(
        image_tokens, text_hidden, text_hidden
    )


def llava_shapes(config: Any) -> tuple[VisionShape, DecoderShape]:
    """The two shapes of a transformers ``LlavaConfig``."""
    v, t = config.vision_config, config.text_config
    heads = t.num_attention_heads
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // heads
    vision = VisionShape(v.hidden_size, v.intermediate_size, v.num_hidden_layers, v.patch_size, v.image_size)
    decoder = DecoderShape(
        t.hidden_size,
        t.intermediate_size,
        t.num_hidden_layers,
        heads,
        t.num_key_value_heads or heads,
        head_dim,
        t.vocab_size,
    )
    return vision, decoder


def llava_forward_flops(config: Any, batch: int, seq: int, logit_positions: int) -> int:
    """FLOPs of one LLaVA forward: vision tower and projector per image (one per sequence), then the decoder."""
    vision, decoder = llava_shapes(config)
    return (
        vision_flops(vision, batch)
        + projector_flops(vision.hidden, decoder.hidden, batch * vision.patches)
        + decoder_flops(decoder, batch, seq, logit_positions)
    )


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of ``y = c * x^b`` on log-log axes; returns ``(b, c)``.

    ``b`` is the slope of ``log y`` against ``log x``: 1 means linear growth.
    """
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need two or more (x, y) pairs, got {len(xs)} and {len(ys)}")
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("a log-log fit needs positive values")
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    var = sum((a - mx) ** 2 for a in lx)
    if var == 0:
        raise ValueError("every x is the same: no slope to fit")
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / var
    return slope, math.exp(my - slope * mx)


def sparse_bytes_per_token(top_k: int) -> int:
    """Bytes of one stored target (`seed.files.targets` shard layout): int32 ids + float16 log-probs + float32 tail."""
    return top_k * (4 + 2) + 4


def dense_bytes_per_token(vocab: int) -> int:
    """Bytes of one dense float16 distribution over ``vocab`` tokens."""
    return 2 * vocab


def truncation_kl(full_log_probs: torch.Tensor, sparse: SparseTargets) -> torch.Tensor:
    """Per token, ``KL(P* || Q)`` from the full purified target to its stored sparse representation.

    ``Q`` is what a shard holds, made a distribution: the kept tokens at their stored (float16)
    probabilities, and the stored tail mass spread evenly over the ``vocab - kept`` other tokens
    (the shard does not say which of them were in the support), all renormalised to sum to 1.

    Args:
        full_log_probs: (tokens, vocab) ``log P*_t``, ``-inf`` outside the support.
        sparse: the (tokens, k) `SparseTargets` of the same targets.

    Returns:
        (tokens,) float64 KL in nats; 0 when every support fits in the top k (up to float16 rounding).
    """
    import torch

    log_p = full_log_probs.double()
    vocab = log_p.shape[-1]
    real = sparse.log_probs.isfinite()
    kept_p = torch.where(real, sparse.log_probs.double().exp(), torch.zeros((), dtype=torch.float64))
    tail = sparse.tail_mass.double()
    total = kept_p.sum(-1) + tail
    others = vocab - real.sum(-1)
    spread = torch.where(others > 0, tail / total / others.clamp(min=1), torch.zeros_like(tail))
    # Padding slots point at index 0 with zero mass: scatter_add leaves token 0's real value intact.
    index = torch.where(real, sparse.indices.long(), torch.zeros_like(sparse.indices, dtype=torch.long))
    zeros = torch.zeros_like(log_p)
    kept_q = zeros.scatter_add(-1, index, kept_p / total.unsqueeze(-1))
    is_kept = zeros.scatter_add(-1, index, real.double()) > 0
    q = torch.where(is_kept, kept_q, spread.unsqueeze(-1).expand_as(log_p))
    p = log_p.exp()
    terms = torch.where(p > 0, p * (log_p - q.log()), torch.zeros_like(p))
    return terms.sum(-1)


def renormalised_topk_kl(sparse: SparseTargets) -> torch.Tensor:
    """Per token, ``KL(Q_k || P*) = -log(1 - tail)``: the top k renormalised, tail dropped (what the loss fits).

    The distillation loss reads the kept tokens only, so the student is pulled to ``P*`` renormalised
    on them (`seed.core.losses`); this is the KL of that target from the full one.
    """
    import torch

    return -torch.log1p(-sparse.tail_mass.double().clamp(max=1 - 1e-12))
