"""Stage 0 of pretraining: the vision tower learns to recognise objects before it meets the language model.

Real LVLMs start from a vision encoder that was pretrained on its own (CLIP) and only then learn the
projector and the language model (LLaVA stages 1 and 2). Our embedded model does the same at toy scale:
the tower is trained for ``vision_steps`` steps on the training images' object labels (multi-label,
one logit per category), reading the layer the language model will read (``vision_feature_layer``).
Only training images and their annotations are used; evaluation images are never read.

A category's logit is the maximum over patches of a linear score, so a small object in one patch is
as visible as a large one (multiple-instance pooling).

With ``align`` the linear score is replaced by the cosine between the *projected* patch feature and
the category name's word embedding (times a learned scale), and the projector and the embeddings
train with the tower: image and text then start the LLaVA stage in one shared space, as CLIP's image
and text towers do. Without it the language model has to discover which image feature answers which
word, and in a few hundred steps on two CPU cores it does not.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from seed.errors import DataError


def object_labels(annotations_path: Path, file_names: list[str]) -> tuple[Any, list[str]]:
    """Multi-hot object labels of training images.

    Returns ``(labels, categories)``: labels (n_images, n_categories) float tensor, 1 where the
    image holds at least one instance of the category; categories in annotation-id order.
    """
    import torch

    try:
        coco = json.loads(Path(annotations_path).read_text())
        categories = sorted(coco["categories"], key=lambda c: c["id"])
        column = {c["id"]: i for i, c in enumerate(categories)}
        image_ids = {im["file_name"]: im["id"] for im in coco["images"] if im.get("split") == "train"}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(annotations_path, f"unreadable COCO annotations ({exc})") from exc
    row_of_id = {}
    for row, name in enumerate(file_names):
        if name not in image_ids:
            raise DataError(annotations_path, f"training image {name} has no entry", field="images")
        row_of_id[image_ids[name]] = row
    labels = torch.zeros(len(file_names), len(categories))
    for ann in coco["annotations"]:
        row = row_of_id.get(ann["image_id"])
        if row is not None:
            labels[row, column[ann["category_id"]]] = 1.0
    return labels, [c["name"] for c in categories]


def patch_max_logits(features: Any, weight: Any, bias: Any) -> Any:
    """Category logits by max-pooling per-patch linear scores.

    features: (batch, patches, hidden); weight: (categories, hidden); bias: (categories,).
    Returns (batch, categories): ``max_p (features[:, p] @ weight.T + bias)``.
    """
    return (features @ weight.T + bias).amax(dim=1)


def aligned_max_logits(projected: Any, embeddings: Any, scale: Any, bias: Any) -> Any:
    """Category logits from the cosine of projected patch features and category word embeddings.

    projected: (batch, patches, text_hidden), the projector's output; embeddings: (categories,
    text_hidden), the embedding rows of the category names; scale: scalar; bias: (categories,).
    Returns (batch, categories): ``max_p scale * cos(projected[:, p], embeddings[c]) + bias[c]``.
    """
    import torch

    z = torch.nn.functional.normalize(projected, dim=-1)
    e = torch.nn.functional.normalize(embeddings, dim=-1)
    return (scale * z @ e.T + bias).amax(dim=1)


def vision_lr_at(step: int, steps: int, lr: float, schedule: str) -> float:
    """Stage 0's learning rate at ``step`` of ``steps``: linear warm-up over the first 10%, then
    ``lr`` (schedule ``"constant"``) or a cosine decay from ``lr`` to ``lr / 10`` (``"cosine"``)."""
    warmup = max(1, steps // 10)
    if step < warmup or schedule == "constant":
        return lr * min(1.0, (step + 1) / warmup)
    if schedule != "cosine":
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    progress = (step - warmup) / max(1, steps - 1 - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain_vision(
    model: Any,
    pixels: Any,
    labels: Any,
    steps: int,
    batch_size: int,
    lr: float,
    feature_layer: int,
    seed: int,
    progress: bool = True,
    word_ids: Any = None,
    schedule: str = "constant",
) -> list[dict]:
    """Train ``model``'s vision tower on multi-label object recognition; returns the loss history.

    pixels: (n, 3, H, W) normalised images; labels: (n, categories) multi-hot. The tower's
    ``feature_layer`` hidden state (patch tokens, class token dropped) feeds a linear head that is
    thrown away afterwards. The projector and the language model are not touched.

    word_ids: (categories,) token ids of the category names: score by ``aligned_max_logits`` and
    train the projector and the input embeddings too (only the linear head's bias is kept).

    schedule: the learning rate after its linear warm-up over the first 10% of the steps:
    ``"constant"``, or ``"cosine"`` decay to 10% of ``lr`` at the last step.
    """
    import torch
    from tqdm import tqdm

    tower = model.model.vision_tower
    hidden = tower.config.hidden_size
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(hidden, labels.shape[1])
    with torch.no_grad():
        head.weight.normal_(0.0, hidden**-0.5, generator=generator)
        head.bias.fill_(-2.0)  # most categories are absent from most images
    head.to(pixels.device)
    params = list(tower.parameters()) + list(head.parameters())
    if word_ids is not None:
        projector, embeddings = model.model.multi_modal_projector, model.get_input_embeddings()
        scale = torch.nn.Parameter(torch.tensor(10.0, device=pixels.device))
        params += list(projector.parameters()) + list(embeddings.parameters()) + [scale]
        word_ids = torch.as_tensor(word_ids, device=pixels.device)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    tower.train()
    history: list[dict] = []
    bar = tqdm(range(steps), desc="pretrain vision", disable=not progress, dynamic_ncols=True)
    ema = None
    for step in bar:
        idx = torch.randint(len(pixels), (batch_size,), generator=generator)
        out = tower(pixels[idx], output_hidden_states=True)
        features = out.hidden_states[feature_layer][:, 1:]
        if word_ids is None:
            logits = patch_max_logits(features, head.weight, head.bias)
        else:
            logits = aligned_max_logits(projector(features), embeddings.weight[word_ids], scale, head.bias)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[idx])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in optimizer.param_groups:
            group["lr"] = vision_lr_at(step, steps, lr, schedule)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        history.append({"step": step, "loss": value})
        bar.set_postfix(loss=f"{ema:.3f}")
    return history
