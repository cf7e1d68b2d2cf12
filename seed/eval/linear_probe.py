"""Linear probes on image tokens: a linear score per class, pooled over patches, fitted by L-BFGS.

`seed.eval.probe` fits them on a base model's projected image tokens to ask what the tokens carry
(objects: multi-label, max over patches; the scene: single-label, the mean token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class LinearProbe:
    """A linear score per class on standardised tokens, pooled over patches.

    weight: (classes, hidden); bias: (classes,); mean / std: (hidden,) of the training tokens.
    pooling: ``"max"`` (the best patch's score: an object in one patch counts) or ``"mean"`` (the
    score of the mean token: a property of the whole image).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    pooling: str

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """features: (images, patches, hidden) -> (images, classes) logits."""
        return pooled_scores((features - self.mean) / self.std, self.weight, self.bias, self.pooling)


def pooled_scores(
    features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, pooling: str
) -> torch.Tensor:
    """Per-patch linear scores pooled over patches.

    features: (images, patches, hidden); weight: (classes, hidden); bias: (classes,).
    Returns (images, classes): ``max_p`` (pooling "max") or ``mean_p`` (pooling "mean") of
    ``features[:, p] @ weight.T + bias``; the mean equals the score of the mean token.
    """
    if pooling == "max":
        return (features @ weight.T + bias).amax(dim=1)
    if pooling == "mean":
        return features.mean(dim=1) @ weight.T + bias
    raise ValueError(f"pooling must be 'max' or 'mean', got {pooling!r}")


def train_probe(
    features: torch.Tensor,
    targets: torch.Tensor,
    pooling: str,
    weight_decay: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
) -> LinearProbe:
    """Fit a `LinearProbe` by full-batch L-BFGS (strong Wolfe line search), float32 on the CPU.

    features: (images, patches, hidden). targets: (images, classes) float multi-hot for a
    multi-label probe (mean binary cross-entropy), or (images,) int64 class indices for a
    single-label one (softmax cross-entropy over ``classes = targets.max() + 1``, at least 2).
    The loss adds ``weight_decay / 2 * ||weight||^2``. Deterministic for a ``seed``.
    """
    import torch

    features = features.float()
    flat = features.reshape(-1, features.shape[-1])
    mean, std = flat.mean(dim=0), flat.std(dim=0).clamp_min(1e-6)
    x = (features - mean) / std
    multilabel = targets.dim() == 2
    n_classes = targets.shape[1] if multilabel else max(int(targets.max()) + 1, 2)
    generator = torch.Generator().manual_seed(seed)
    weight = (0.01 * torch.randn(n_classes, x.shape[-1], generator=generator)).requires_grad_()
    bias = torch.zeros(n_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = pooled_scores(x, weight, bias, pooling)
        if multilabel:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.float())
        else:
            loss = torch.nn.functional.cross_entropy(logits, targets)
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearProbe(weight.detach(), bias.detach(), mean, std, pooling)
