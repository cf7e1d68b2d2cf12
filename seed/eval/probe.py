"""Probe a base model: do its image tokens carry the objects, does its language model read them, what does noise keep?

```
 image --processor--> pixels --(noised at T, seed.core.noise)--> tower + projector --> tokens (n, patches, hidden)
   tokens --object probe: per-patch linear score per category, max over patches, BCE--> score(image, category)
   tokens --scene probe: linear score of the mean token, softmax over scene types----> scene
 (image, question) --first answer token, clean and noised (seed.model.vcd.decode)--> yes-minus-no margins
```

The probes are trained on a *decorrelated* world (``cooccurrence: 0``: objects do not follow the
scene), so that they cannot learn the scene as a shortcut for the objects, and scored on the
evaluated world's POPE questions (the AUC of the probe's score for the asked category) and images
(scene accuracy). `run_probe` writes every number to one JSON file (``seed probe``; keys in
docs/method.md, "Probing the base model").
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import DataError
from seed.eval.linear_probe import train_probe
from seed.model.margins import QUESTION_RE, first_token_margins

if TYPE_CHECKING:
    import torch

PROBE_SEED_OFFSET = 1  # the probe world's seed: the evaluated world's seed + this
# L-BFGS iterations at most: enough that the probes stop at L-BFGS's own convergence tolerance
# (an object probe stopped at 100 iterations understated a tower's AUC by about 0.02).
PROBE_MAX_ITER = 1000
COUNTERFACTUAL = "counterfactual"
ADVERSARIAL = "adversarial"


# ---------------------------------------------------------------------------------------------------
# Features and margins


def image_features(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    noise_step: int | None = None,
    sample_ids: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int = 128,
) -> torch.Tensor:
    """The projected image tokens the language model reads, float32 on the CPU: (images, patches, hidden).

    images: PIL images. With ``noise_step`` the processor's pixels of image ``i`` are noised at that
    step with the seed ``sample_seed(sample_ids[i], seed)`` (`seed.core.noise.add_diffusion_noise`, as
    `seed.model.teacher.noise_pixels` noises a batch). LLaVA-layout models (``get_image_features`` returning
    one (patches, hidden) block per image).
    """
    import torch

    from seed.core.noise import add_diffusion_noise, sample_seed

    if noise_step is not None and (sample_ids is None or len(sample_ids) != len(images)):
        raise ValueError("noised features need one sample id per image")
    config = model.config
    blocks = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunk = list(images[start : start + batch_size])
            pixels = processor.image_processor(chunk, return_tensors="pt")["pixel_values"]
            if noise_step is not None:
                ids = sample_ids[start : start + batch_size]
                pixels = add_diffusion_noise(pixels, noise_step, seeds=[sample_seed(i, seed) for i in ids])
            out = model.get_image_features(
                pixel_values=pixels.to(model.device, model.dtype),
                vision_feature_layer=config.vision_feature_layer,
                vision_feature_select_strategy=config.vision_feature_select_strategy,
            )
            tokens = out.pooler_output if hasattr(out, "pooler_output") else out
            blocks.append(torch.stack(list(tokens)).float().cpu())
    return torch.cat(blocks)


# ---------------------------------------------------------------------------------------------------
# Scores


def question_category(text: str, categories: Sequence[str]) -> int:
    """The index in ``categories`` of the object a POPE question asks about ("Is there a cup ...")."""
    match = QUESTION_RE.match(text)
    if match is None or match.group(1) not in categories:
        raise ValueError(f"not a POPE question about a known category: {text!r}")
    return list(categories).index(match.group(1))


def question_auc(
    image_scores: torch.Tensor,
    image_index: Sequence[int],
    category_index: Sequence[int],
    labels: Sequence[str],
) -> float | None:
    """AUC of a probe's score for (image, asked category), present ("yes") vs absent ("no").

    image_scores: (images, categories); image_index / category_index / labels: one per question.
    None when one label is missing (`seed.eval.pope.margin_auc`).
    """
    from seed.eval.pope import margin_auc

    scores = image_scores[list(image_index), list(category_index)]
    return margin_auc(list(labels), scores.tolist())


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of rows whose argmax is the target. logits: (n, classes); targets: (n,) int64."""
    return float((logits.argmax(dim=-1) == targets).double().mean())


# ---------------------------------------------------------------------------------------------------
# The command


def probe_world_config(config: Any, probe_images: int) -> Any:
    """The decorrelated probe world of a world's `WorldConfig`: same world, objects independent of the scene.

    ``cooccurrence`` 0, another seed (+ `PROBE_SEED_OFFSET`), ``probe_images`` training images and
    no other split.
    """
    return dataclasses.replace(
        config,
        seed=config.seed + PROBE_SEED_OFFSET,
        cooccurrence=0.0,
        n_train=probe_images,
        n_seed=0,
        n_pope_images=0,
        n_mme_images=0,
        n_chair_images=0,
    )


def _image_records(data_dir: Path) -> dict[str, dict]:
    """file name -> its record in ``data_dir/annotations.json`` (``split``, ``scene``, ...)."""
    path = data_dir / "annotations.json"
    try:
        return {image["file_name"]: image for image in json.loads(path.read_text())["images"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, f"unreadable COCO annotations ({exc})") from exc


def _split_questions(data_dir: Path, split: str) -> list[dict]:
    from seed.eval.pope import load_pope_questions

    path = data_dir / "pope" / f"world_pope_{split}.json"
    if not path.is_file():
        raise DataError(path, f"no POPE {split} split: rebuild the world with `seed data synth`")
    return load_pope_questions(path)


def run_probe(
    model_path: Path,
    data_dir: Path,
    out_path: Path,
    noise_step: int,
    probe_images: int = 3000,
    seed: int = 0,
    weight_decay: float = 1e-3,
    max_iter: int = PROBE_MAX_ITER,
    progress: bool = True,
) -> dict:
    """Probe ``model_path`` on the world ``data_dir`` and write the report to ``out_path``; returns it.

    ``seed`` seeds the noise (as purify / VCD do) and the probes' initialisation. The probe world is
    built in a temporary folder (`probe_world_config`) and removed afterwards.
    """
    import torch
    from tqdm import tqdm

    from seed.base.vision_pretrain import object_labels
    from seed.eval.pope import build_pope_prompt, margin_auc
    from seed.files.atomic import write_json
    from seed.files.hashing import model_hash
    from seed.model.generate import load_model, open_image
    from seed.world.redraw import world_config
    from seed.world.synth import synthesize
    from seed.world.vocab import SCENES

    data_dir, model_path = Path(data_dir), Path(model_path)
    splits = {split: _split_questions(data_dir, split) for split in (ADVERSARIAL, COUNTERFACTUAL)}
    records = _image_records(data_dir)
    scenes = [s.name for s in SCENES]
    config = probe_world_config(world_config(data_dir), probe_images)
    model, processor = load_model(model_path)

    def features(folder: Path, names: list[str], noised: bool) -> torch.Tensor:
        images = [open_image(folder / name) for name in names]
        return image_features(model, processor, images, noise_step if noised else None, names, seed)

    with tempfile.TemporaryDirectory(prefix="seed-probe-world-") as tmp:
        world = Path(tmp) / "world"
        synthesize(world, config, progress=progress)
        train_records = _image_records(world)
        train_names = sorted(n for n, r in train_records.items() if r["split"] == "train")
        object_targets, categories = object_labels(world / "annotations.json", train_names)
        scene_targets = torch.tensor([scenes.index(train_records[n]["scene"]) for n in train_names])
        train = {
            noised: features(world / "images" / "train", train_names, noised) for noised in (False, True)
        }
    eval_names = sorted({q["image"] for questions in splits.values() for q in questions})
    row = {name: i for i, name in enumerate(eval_names)}
    evaluated = {
        noised: features(data_dir / "images" / "eval", eval_names, noised) for noised in (False, True)
    }
    bar = tqdm(total=4, desc="probes", disable=not progress)
    object_scores, scene_logits = {}, {}
    for noised in (False, True):
        probe = train_probe(train[noised], object_targets, "max", weight_decay, max_iter, seed)
        object_scores[noised] = probe.scores(evaluated[noised])
        bar.update(1)
        probe = train_probe(train[noised], scene_targets, "mean", weight_decay, max_iter, seed)
        scene_logits[noised] = probe.scores(evaluated[noised])
        bar.update(1)
    bar.close()

    def object_auc(split: str, noised: bool) -> float | None:
        questions = splits[split]
        return question_auc(
            object_scores[noised],
            [row[q["image"]] for q in questions],
            [question_category(q["text"], categories) for q in questions],
            [q["label"] for q in questions],
        )

    cf_names = sorted({q["image"] for q in splits[COUNTERFACTUAL]})
    cf_rows = [row[name] for name in cf_names]
    cf_scenes = torch.tensor([scenes.index(records[name]["scene"]) for name in cf_names])
    questions = splits[COUNTERFACTUAL]
    cf_images = {name: open_image(data_dir / "images" / "eval" / name) for name in cf_names}
    clean, noised = first_token_margins(
        model,
        processor,
        [cf_images[q["image"]] for q in questions],
        [build_pope_prompt(q["text"]) for q in questions],
        [f"{q['image']}|{build_pope_prompt(q['text'])}" for q in questions],
        noise_step,
        seed,
    )
    labels = [q["label"] for q in questions]
    report = {
        "tower_auc_adversarial": object_auc(ADVERSARIAL, False),
        "tower_auc_counterfactual": object_auc(COUNTERFACTUAL, False),
        "lm_auc_counterfactual": margin_auc(labels, clean),
        "scene_accuracy": accuracy(scene_logits[False][cf_rows], cf_scenes),
        "noised_scene_accuracy": accuracy(scene_logits[True][cf_rows], cf_scenes),
        "noised_object_auc": object_auc(COUNTERFACTUAL, True),
        "noised_object_auc_adversarial": object_auc(ADVERSARIAL, True),
        "noised_lm_auc_counterfactual": margin_auc(labels, noised),
        "contrast_auc_counterfactual": margin_auc(
            labels, [c - n for c, n in zip(clean, noised, strict=True)]
        ),
        "settings": {
            "noise_step": noise_step,
            "seed": seed,
            "model": str(model_path),
            "model_hash": model_hash(model_path),
            "data": str(data_dir),
            "probe_world": dataclasses.asdict(config),
            "probe": {"weight_decay": weight_decay, "max_iter": max_iter, "optimizer": "lbfgs"},
            "sizes": {
                "probe_images": probe_images,
                "eval_images": len(eval_names),
                "counterfactual_images": len(cf_names),
                "questions": {split: len(qs) for split, qs in splits.items()},
                "categories": len(categories),
                "scenes": len(scenes),
            },
        },
    }
    write_json(out_path, report)
    return report
