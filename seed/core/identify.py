"""Identify: how sure the teacher is of each token, on the clean image.

A token the teacher predicts with low confidence is a likely hallucination; SEED purifies it the
hardest (method.md, step 1). For ``p_t = softmax(l_t)`` over a vocabulary of size ``V``:

    max_prob:  c_t = max_v p_t(v)                                   (default)
    entropy:   c_t = 1 - H(p_t) / log V,   H(p) = -sum_v p(v) log p(v)

Both lie in [0, 1] and grow with confidence: a one-hot ``p_t`` gives 1, a uniform one gives
``1 / V`` (max_prob) or 0 (entropy). The share of tokens with ``c_t < tau`` is reported per run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seed.errors import ConfigError

if TYPE_CHECKING:
    import torch

CONFIDENCE_METHODS = ("max_prob", "entropy")


def token_confidence(logits: torch.Tensor, method: str = "max_prob") -> torch.Tensor:
    """Per-token confidence ``c_t`` in [0, 1], higher = more confident.

    Args:
        logits: (..., vocab) teacher logits on the clean image, any float dtype.
        method: ``"max_prob"`` (``max_v p(v)``) or ``"entropy"`` (``1 - H(p) / log V``).

    Returns:
        (...) float32 confidences (float64 for float64 input). With ``V = 1`` both give 1.
    """
    import torch

    if method not in CONFIDENCE_METHODS:
        raise ConfigError(
            f"confidence method {method!r} is unknown; choose one of {', '.join(CONFIDENCE_METHODS)}"
        )
    compute_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    log_p = torch.log_softmax(logits.to(compute_dtype), dim=-1)
    if method == "max_prob":
        return log_p.max(dim=-1).values.exp()
    vocab = logits.shape[-1]
    if vocab == 1:
        return torch.ones(logits.shape[:-1], dtype=compute_dtype, device=logits.device)
    # xlogy-style: exp(-inf) * -inf would be NaN, so zero-probability entries contribute 0.
    p = log_p.exp()
    entropy = -torch.where(p > 0, p * log_p, torch.zeros_like(p)).sum(dim=-1)
    return (1.0 - entropy / torch.log(torch.tensor(float(vocab), dtype=compute_dtype))).clamp(0.0, 1.0)


def flagged_share(confidence: torch.Tensor, mask: torch.Tensor, tau: float) -> float:
    """Share of masked-in tokens with ``confidence < tau``; 0.0 when the mask selects no token.

    Args:
        confidence: (...) per-token confidence, e.g. from :func:`token_confidence`.
        mask: (...) bool (or 0/1) tensor, True for tokens that count (response tokens).
        tau: the flagging threshold.
    """
    selected = mask.bool()
    total = int(selected.sum())
    if total == 0:
        return 0.0
    flagged = int(((confidence < tau) & selected).sum())
    return flagged / total
