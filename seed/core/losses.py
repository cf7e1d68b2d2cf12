"""Distil back: losses between the student and the purified sparse targets.

Per response token ``t``, with student ``q_t = softmax(student_logits_t)`` and target ``P*_t`` given
on its support ``V_t`` (method.md, step 4):

Reverse KL, mode-seeking (default)::

    q~_t(v) = q_t(v) / q_t(V_t)                      q renormalised on V_t
    L_t     = sum_{v in V_t} q~_t(v) * (log q~_t(v) - log P*_t(v))  -  log q_t(V_t)

The first term is ``KL(q~_t || P*_t)``; the second, ``-log q_t(V_t) >= 0``, pushes the student's mass
out of the void space outside ``V_t``. Both vanish iff ``q_t = P*_t``, the unique minimiser.
``log q_t(V_t)`` is a logsumexp over the support, so ``|V_t| = 1`` gives ``L_t = -log P*_t(v) - log q_t(v)``
(``= -log q_t(v)`` for a one-token target).

Forward KL, mass-covering (the ablation the paper argues against)::

    L_t = sum_{v in V_t} P*_t(v) * (log P*_t(v) - log q_t(v))

Both return the mean of ``L_t`` over masked-in tokens, or with ``token_weights`` ``w_t`` the weighted
mean ``sum_t w_t L_t / sum_t w_t`` (a sample's tokens all carry its weight; see
`seed.core.balance`). Prompt and image tokens are masked out by the caller (``labels_mask``).

Targets are used exactly as given. Capped targets from :func:`seed.core.purify.sparsify_targets` sum to
``Z_t = 1 - tail_mass_t`` on the kept set: the reverse KL then exceeds the KL to the renormalised
target by the constant ``-log Z_t`` (same gradient, same minimiser ``q_t = P*_t / Z_t``), and the forward
KL's weights sum to ``Z_t``.

Conventions:

- Sparse targets: ``target_indices`` (batch, seq, k) integer ids and ``target_log_probs`` (batch, seq,
  k). A slot is real iff its log-prob is finite; padding slots hold ``-inf`` (any index in range,
  0 by convention). No NaN is ever produced from padding.
- A token whose target has no real slot carries no loss and does not count in the mean.
- Everything is computed in float32 (float64 if the student logits are float64), whatever the
  student's dtype; the result is a 0-dim tensor of that dtype.
- When no token counts, the loss is ``0.0`` and still has a gradient path (zero gradients).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seed.errors import ConfigError

if TYPE_CHECKING:
    import torch

LOSS_KINDS = ("reverse_kl", "forward_kl")


def _gather_support(
    student_logits: torch.Tensor, target_indices: torch.Tensor, target_log_probs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Student log-probs on the target slots, with NaN-free handling of padding.

    Returns ``(log_q, target, real, has_support)``: (batch, seq, k) ``log q_t(v)`` at every slot,
    (batch, seq, k) target log-probs with padding replaced by 0, (batch, seq, k) bool real slots,
    and (batch, seq) bool "has at least one real slot".
    """
    import torch

    compute_dtype = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
    logits = student_logits.to(compute_dtype)
    log_norm = torch.logsumexp(logits, dim=-1, keepdim=True)
    log_q = torch.gather(logits, -1, target_indices.long()) - log_norm
    target = target_log_probs.to(compute_dtype)
    real = target.isfinite()
    target = torch.where(real, target, torch.zeros_like(target))
    return log_q, target, real, real.any(dim=-1)


def _masked_mean(
    token_loss: torch.Tensor, counted: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of (batch, seq) ``token_loss`` over ``counted``, weighted by (batch, seq) ``weights`` if
    given (``sum w L / sum w`` over counted tokens); 0.0 with a gradient path when empty."""
    import torch

    zeros = torch.zeros_like(token_loss)
    if weights is None:
        total = torch.where(counted, token_loss, zeros).sum()
        return total / counted.sum().clamp(min=1).to(token_loss.dtype)
    w = torch.where(counted, weights.to(token_loss.dtype), zeros)
    total = torch.where(counted, token_loss * w, zeros).sum()
    norm = w.sum()
    return total / torch.where(norm > 0, norm, torch.ones_like(norm))


def reverse_kl(
    student_logits: torch.Tensor,
    target_indices: torch.Tensor,
    target_log_probs: torch.Tensor,
    labels_mask: torch.Tensor,
    token_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mode-seeking loss ``mean_t [KL(q~_t || P*_t) - log q_t(V_t)]`` on sparse targets.

    Args:
        student_logits: (batch, seq, vocab) student logits, any float dtype.
        target_indices: (batch, seq, k) integer vocabulary ids of the support ``V_t``.
        target_log_probs: (batch, seq, k) ``log P*_t`` at those ids; ``-inf`` marks padding.
        labels_mask: (batch, seq) bool (or 0/1), True for response tokens that carry loss.
        token_weights: optional (batch, seq) non-negative float weights of the mean (None: all 1).

    Returns:
        0-dim float32 tensor (float64 for float64 logits).
    """
    import torch

    log_q, target, real, has_support = _gather_support(student_logits, target_indices, target_log_probs)
    # Rows with no real slot use slot 0 as a stand-in, so that every logsumexp sees a finite entry
    # (an all -inf logsumexp has a NaN gradient). Those rows are excluded from the mean below.
    first = torch.zeros_like(real)
    first[..., 0] = True
    used = real | (first & ~has_support.unsqueeze(-1))
    neg_inf = torch.full_like(log_q, float("-inf"))
    log_q_support = torch.logsumexp(torch.where(used, log_q, neg_inf), dim=-1, keepdim=True)
    log_q_tilde = log_q - log_q_support
    q_tilde = torch.where(used, log_q_tilde.exp(), torch.zeros_like(log_q_tilde))
    token_loss = (q_tilde * (log_q_tilde - target)).sum(dim=-1) - log_q_support.squeeze(-1)
    return _masked_mean(token_loss, labels_mask.bool() & has_support, token_weights)


def forward_kl(
    student_logits: torch.Tensor,
    target_indices: torch.Tensor,
    target_log_probs: torch.Tensor,
    labels_mask: torch.Tensor,
    token_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mass-covering loss ``mean_t sum_{v in V_t} P*_t(v) (log P*_t(v) - log q_t(v))`` on sparse targets.

    Arguments, masking and dtype as :func:`reverse_kl`.
    """
    import torch

    log_q, target, real, has_support = _gather_support(student_logits, target_indices, target_log_probs)
    p = torch.where(real, target.exp(), torch.zeros_like(target))
    token_loss = (p * (target - log_q)).sum(dim=-1)
    return _masked_mean(token_loss, labels_mask.bool() & has_support, token_weights)


def distillation_loss(
    kind: str,
    student_logits: torch.Tensor,
    target_indices: torch.Tensor,
    target_log_probs: torch.Tensor,
    labels_mask: torch.Tensor,
    token_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch to :func:`reverse_kl` (``kind="reverse_kl"``) or :func:`forward_kl` (``"forward_kl"``)."""
    if kind == "reverse_kl":
        return reverse_kl(student_logits, target_indices, target_log_probs, labels_mask, token_weights)
    if kind == "forward_kl":
        return forward_kl(student_logits, target_indices, target_log_probs, labels_mask, token_weights)
    raise ConfigError(f"distillation loss {kind!r} is unknown; choose one of {', '.join(LOSS_KINDS)}")
