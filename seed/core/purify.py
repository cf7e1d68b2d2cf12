"""Purify: subtract the language prior isolated by the noised image, on the plausible tokens only.

For one response token ``t`` with teacher logits ``l_t`` on the clean image and ``n_t`` on the
noised image (method.md, step 3):

    p_t      = softmax(l_t)
    V_t      = { v : p_t(v) >= cd_beta * max_w p_t(w) }                 plausible set
    a_t      = cd_alpha * (1 - c_t)      (adaptive, default)            contrast strength
             = cd_alpha                  (plain VCD)
    s_t(v)   = (1 + a_t) * l_t(v) - a_t * n_t(v)                         for v in V_t
    log P*_t = log_softmax(s_t restricted to V_t);  P*_t(v) = 0 outside V_t

``c_t`` is the confidence of :mod:`seed.core.identify`. ``V_t`` always holds the argmax of ``p_t``, so
``P*_t`` is a proper distribution. With ``a_t = 0`` it is ``p_t`` renormalised on ``V_t``.

The dense ``P*_t`` is never written: :func:`sparsify_targets` keeps the ``top_k`` most likely tokens
of ``V_t`` and the mass the cap dropped (see :class:`SparseTargets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seed.core.identify import token_confidence

if TYPE_CHECKING:
    import torch

DEFAULT_TOP_K = 32


def plausible_mask(clean_logits: torch.Tensor, cd_beta: float) -> torch.Tensor:
    """The plausible set ``V_t = {v : p_t(v) >= cd_beta * max p_t}`` as a mask.

    Evaluated in log space as ``l_t(v) - max l_t >= log cd_beta`` (float32), which is the same
    test without the softmax. ``cd_beta`` lies in [0, 1]: 0 keeps every token, 1 keeps the argmax
    (and its ties). The argmax always passes.

    Args:
        clean_logits: (..., vocab) teacher logits on the clean image.
        cd_beta: the plausibility cut-off ``beta``.

    Returns:
        (..., vocab) bool.
    """
    import torch

    if not 0.0 <= cd_beta <= 1.0:
        raise ValueError(f"cd_beta must lie in [0, 1], got {cd_beta}")
    logits = clean_logits.float()
    gap = logits - logits.max(dim=-1, keepdim=True).values
    if cd_beta == 0.0:
        return torch.ones_like(gap, dtype=torch.bool)
    return gap >= math.log(cd_beta)


def contrast_strength(confidence: torch.Tensor, cd_alpha: float, adaptive: bool = True) -> torch.Tensor:
    """Per-token contrast strength ``a_t``: ``cd_alpha * (1 - c_t)`` if adaptive, else ``cd_alpha``.

    Args:
        confidence: (...) per-token confidence ``c_t`` in [0, 1].
        cd_alpha: the base strength ``alpha`` (>= 0).
        adaptive: False gives plain VCD (the same strength for every token).

    Returns:
        (...) tensor of the confidence's dtype.
    """
    import torch

    if adaptive:
        return cd_alpha * (1.0 - confidence)
    return torch.full_like(confidence, float(cd_alpha))


def purify_logits(
    clean_logits: torch.Tensor,
    noised_logits: torch.Tensor,
    cd_alpha: float,
    cd_beta: float,
    confidence_method: str = "max_prob",
    adaptive: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Purified target ``log P*_t = log_softmax((1 + a_t) l_t - a_t n_t on V_t)``.

    Args:
        clean_logits: (batch, seq, vocab) teacher logits on the clean image, any float dtype.
        noised_logits: (batch, seq, vocab) teacher logits on the noised image.
        cd_alpha: contrast strength ``alpha``; 0 returns ``p_t`` renormalised on ``V_t``.
        cd_beta: plausibility cut-off ``beta`` in [0, 1].
        confidence_method: ``"max_prob"`` or ``"entropy"``, for the adaptive strength.
        adaptive: ``a_t = cd_alpha * (1 - c_t)`` if True, ``a_t = cd_alpha`` (plain VCD) if False.

    Returns:
        ``(target_log_probs, support_mask)``: (batch, seq, vocab) float32 log-probs, ``-inf``
        outside ``V_t``, and the (batch, seq, vocab) bool mask of ``V_t``. Leading dimensions other
        than (batch, seq) work the same way.
    """
    import torch

    if clean_logits.shape != noised_logits.shape:
        raise ValueError(
            f"clean_logits {tuple(clean_logits.shape)} and noised_logits {tuple(noised_logits.shape)} differ"
        )
    clean = clean_logits.float()
    noised = noised_logits.float()
    support = plausible_mask(clean, cd_beta)
    strength = contrast_strength(token_confidence(clean, confidence_method), cd_alpha, adaptive).unsqueeze(-1)
    scores = (1.0 + strength) * clean - strength * noised
    scores = scores.masked_fill(~support, float("-inf"))
    return torch.log_softmax(scores, dim=-1), support


def shift_answer_margin(logits: torch.Tensor, shifts: torch.Tensor, yes_id: int, no_id: int) -> torch.Tensor:
    """Lower each row's yes-minus-no margin by its shift, keeping the sum of the two logits.

    logits: (rows, vocab); shifts: (rows,) the margin to remove (0 leaves a row as it is).
    Returns a float32 copy with ``yes -= shift / 2`` and ``no += shift / 2``: the margin
    ``logit(yes) - logit(no)`` falls by ``shift``, every other logit is unchanged. The centred contrast
    (``purify.centre: image``) removes this way the noised view's answer bias on an image, its mean
    margin over the image's existence questions, and keeps its preferences between categories.
    """
    out = logits.float().clone()
    half = shifts.float() / 2
    out[:, yes_id] -= half
    out[:, no_id] += half
    return out


def answer_rate_shift(
    clean: torch.Tensor,
    noised: torch.Tensor,
    cd_alpha: float,
    cd_beta: float,
    confidence_method: str = "max_prob",
    adaptive: bool = True,
    bound: float = 50.0,
    steps: int = 60,
) -> float:
    """The shift ``s`` of the noised answer margins after which purify keeps the split's "yes" rate.

    clean, noised: (n,) first-token margins ``logit(yes) - logit(no)`` of n existence questions on the
    clean and on the noised image. Each question is read on its two answers (logits ``[m, 0]``):
    :func:`purify_logits` with the noised margin ``noised_i - s`` gives the target's ``P*_i(yes)``.
    ``s`` is found by bisection in ``[-bound, bound]`` so that ``mean_i P*_i(yes)`` equals the clean
    view's ``mean_i sigmoid(clean_i)``: the contrast then moves "yes" between questions, towards the
    objects the noised view did not expect, and leaves how often the split is answered "yes" as the
    model had it. ``P*_i(yes)`` never falls as ``s`` grows (the strength is >= 0), so the bisection
    holds; the nearer bound is returned if no ``s`` in range matches, 0.0 for ``n = 0``.
    """
    import torch

    if clean.shape != noised.shape or clean.dim() != 1:
        raise ValueError(
            f"clean {tuple(clean.shape)} and noised {tuple(noised.shape)} must be equal (n,) shapes"
        )
    if clean.numel() == 0:
        return 0.0
    clean = clean.float()
    zeros = torch.zeros_like(clean)
    clean_logits = torch.stack([clean, zeros], dim=-1).unsqueeze(0)  # (1, n, 2): yes, no
    wanted = torch.sigmoid(clean).mean().item()

    def rate(shift: float) -> float:
        noised_logits = torch.stack([noised.float() - shift, zeros], dim=-1).unsqueeze(0)
        target, _ = purify_logits(clean_logits, noised_logits, cd_alpha, cd_beta, confidence_method, adaptive)
        return target[0, :, 0].exp().mean().item()

    lo, hi = -bound, bound
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate(mid) < wanted else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class SparseTargets:
    """The ``top_k`` most likely tokens of each purified target, and the mass the cap dropped.

    Fields (``...`` is (batch, seq) after :func:`sparsify_targets`, (tokens,) after indexing with
    a mask or reading a shard):

    - ``indices``: (..., k) int32 vocabulary ids, most likely first.
    - ``log_probs``: (..., k) float16 ``log P*_t(v)`` of those ids, *as computed on the full
      support* (not renormalised on the kept set): the kept mass is ``1 - tail_mass``.
    - ``tail_mass``: (...) float32 ``sum of P*_t(v)`` over the support tokens the cap dropped
      (0 when ``|V_t| <= k``).

    Padding convention: when ``|V_t| < k`` the unused slots hold index 0 and log-prob ``-inf``.
    A slot is real iff its log-prob is finite; :meth:`counts` gives ``|kept V_t|`` per token.
    (A support token whose log-prob underflows float16, below about -65504, reads as padding; its
    mass is exactly 0 anyway.)
    """

    indices: torch.Tensor
    log_probs: torch.Tensor
    tail_mass: torch.Tensor

    @property
    def top_k(self) -> int:
        return int(self.indices.shape[-1])

    def counts(self) -> torch.Tensor:
        """(...) int64 number of real (non-padding) slots per token."""
        return self.log_probs.isfinite().sum(dim=-1)

    def __getitem__(self, key: Any) -> SparseTargets:
        """Index the leading (token) dimensions of all three fields at once, e.g. ``t[mask]``."""
        return SparseTargets(self.indices[key], self.log_probs[key], self.tail_mass[key])

    def nbytes(self) -> int:
        """Bytes held by the three tensors."""
        return sum(
            int(t.nelement() * t.element_size()) for t in (self.indices, self.log_probs, self.tail_mass)
        )


def sparsify_targets(
    target_log_probs: torch.Tensor, support_mask: torch.Tensor, top_k: int = DEFAULT_TOP_K
) -> SparseTargets:
    """Keep the ``k = min(top_k, vocab)`` most likely support tokens of each target.

    Args:
        target_log_probs: (batch, seq, vocab) log-probs, ``-inf`` outside the support.
        support_mask: (batch, seq, vocab) bool support ``V_t``.
        top_k: the cap on kept tokens per target.

    Returns:
        :class:`SparseTargets` with (batch, seq, k) ``indices`` (int32) and ``log_probs``
        (float16; the original log-probs of the kept tokens, ``-inf`` in padding slots) and
        (batch, seq) ``tail_mass`` (float32) ``= sum_{v in V_t, not kept} P*_t(v)``, summed directly
        over the dropped tokens rather than as ``1 - kept`` to avoid cancellation.
    """
    import torch

    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    log_probs = target_log_probs.float().masked_fill(~support_mask, float("-inf"))
    k = min(top_k, log_probs.shape[-1])
    kept_lp, kept_idx = torch.topk(log_probs, k, dim=-1, sorted=True)
    real = torch.gather(support_mask, -1, kept_idx) & kept_lp.isfinite()
    kept = torch.zeros_like(support_mask).scatter(-1, kept_idx, real)
    dropped = support_mask & ~kept
    tail = torch.where(dropped, log_probs.exp(), torch.zeros_like(log_probs)).sum(dim=-1)
    indices = torch.where(real, kept_idx, torch.zeros_like(kept_idx)).to(torch.int32)
    kept_lp = kept_lp.masked_fill(~real, float("-inf")).to(torch.float16)
    return SparseTargets(indices=indices, log_probs=kept_lp, tail_mass=tail.to(torch.float32))


def densify(sparse: SparseTargets, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter sparse targets back to (..., vocab) float32 log-probs (``-inf`` elsewhere) and a mask.

    The inverse of :func:`sparsify_targets` when every support has at most ``k`` tokens (up to the
    float16 rounding of the log-probs). For tests and inspection; training never densifies.
    """
    import torch

    shape = (*sparse.indices.shape[:-1], vocab_size)
    real = sparse.log_probs.isfinite()
    index = torch.where(real, sparse.indices.long(), torch.zeros_like(sparse.indices, dtype=torch.long))
    dense = torch.full(shape, float("-inf"), dtype=torch.float32, device=sparse.indices.device)
    # Padding slots point at index 0 with -inf: "amax" keeps token 0's real value if it has one.
    dense = dense.scatter_reduce(-1, index, sparse.log_probs.float(), reduce="amax", include_self=True)
    return dense, dense.isfinite()
