"""The base model's next-token loss with each answer turn weighed equally.

A LLaVA-style conversation supervises several assistant turns of very different length: a caption of
twenty tokens, a colour of two, a "Yes" or "No" of two (the word and the end of the turn). The usual
loss is the mean over supervised tokens, so a one-word answer weighs a tenth of a caption, and a model
can fit everything else while leaving the existence answer at its base rate (LOG.md, session 19).
`turn_mean_nll` averages each turn's tokens first, then the turns:

    L = (1 / R) * sum_r (1 / |r|) * sum_{t in r} -log p(y_t | y_<t)

over the R answer turns of the batch, a turn being a maximal run of consecutive supervised positions
of one row. Labels use Hugging Face's convention: ``-100`` where no loss is taken, and position ``t``'s
logits predict label ``t + 1`` (the shift is done here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def turn_weights(mask: torch.Tensor) -> torch.Tensor:
    """Per position, ``1 / |r|`` for the turn ``r`` it belongs to, 0 where ``mask`` is False.

    mask: (batch, seq) bool, True on supervised positions. A turn is a maximal run of True within one
    row. Returns (batch, seq) float32; each turn's weights sum to 1.
    """
    before = torch.zeros_like(mask[:, :1])
    starts = mask & ~torch.cat([before, mask[:, :-1]], dim=1)
    run = torch.cumsum(starts.flatten().long(), 0).view_as(mask)  # 1-based turn id on supervised positions
    lengths = torch.bincount(run[mask], minlength=int(starts.sum()) + 1)
    return torch.where(mask, 1.0 / lengths[run].clamp_min(1).float(), torch.zeros((), dtype=torch.float32))


def turn_mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean over answer turns of each turn's mean token negative log-likelihood.

    logits: (batch, seq, vocab); labels: (batch, seq) long with ``-100`` on unsupervised positions,
    unshifted (``labels[:, t]`` is predicted by ``logits[:, t - 1]``). Computed in float32; returns a
    0-dim tensor, 0.0 (with a gradient path) when no position is supervised.
    """
    target = labels[:, 1:]
    mask = target != IGNORE
    logits = logits[:, :-1].float()
    nll = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.clamp_min(0).reshape(-1), reduction="none"
    ).view_as(target)
    weights = turn_weights(mask)
    turns = weights.sum().clamp_min(1.0)  # each turn's weights sum to 1
    return (nll * weights).sum() / turns
