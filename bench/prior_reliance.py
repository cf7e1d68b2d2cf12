"""Does a model answer from the image or from the scene? POPE answers split by truth and typicality.

A POPE gain can come from sharpening, from a shift toward "yes" or "no", or from removing the scene
prior; one split's F1 or AUC cannot tell them apart. This command pools every POPE question of a
world (all splits, each (image, question) once) and sorts it into four cells by its label (the object
is present or absent) and by whether the object is typical of the image's scene type. From the
first answer token's yes-minus-no margin it reports:

- ``evidence_auc``: AUC of present vs absent *within* typical objects and within atypical ones. The
  prior is held fixed inside a cell pair, so this reads only how well the answer follows the image.
- ``prior_auc``: AUC of typical vs atypical *within* present objects and within absent ones. The truth
  is held fixed, so 0.5 means the answer does not depend on the scene; above 0.5 the model says
  "yes" more for what the scene makes likely (prior-driven), below 0.5 it has over-corrected.
- ``yes_share`` of each cell at margin 0 (the greedy answer).
- ``evidence_within_image``: present vs absent among the questions about the same image
  (`within_image_auc`), where everything the image's questions share cancels.
- ``splits``: each POPE split's greedy F1, yes-ratio and AUC.

The ``oracle prior removed`` rows take the scene prior out with the world's own typical sets
(`oracle_shift`: typical objects' margins lowered by a constant until ``prior_auc`` is 0.5, the
image reading untouched), fully and a quarter, half and three quarters of the way: what removing the
prior, and nothing else, would do to each split. ``oracle_frontier`` is the most counterfactual F1
such a removal buys while random F1 falls at most 0.01 (`oracle_frontier`).

A uniform shift of every margin changes neither AUC; sharpening raises ``evidence_auc`` without
moving ``prior_auc``; removing the prior moves ``prior_auc`` toward 0.5 while ``evidence_auc`` holds.
``visibility`` checks that present typical and atypical objects are drawn alike (share small,
share occluded), which the reading of ``prior_auc`` assumes.

    python -m bench.prior_reliance --model artifacts/base-model [--adapter A] --data W \\
        [--noise-step 900 [--noise-draws K] --alpha 1 --alpha 3] [--out F]

With ``--noise-step`` it also scores the decoding-time contrast ``(1 + a) clean - a noised`` for each
``--alpha`` (VCD's contrast on the first token, without its plausibility cut-off), and purify's
target for the same token (`target_margins`: fixed or adaptive strength, each ``--beta`` cut-off),
which is what SEED's student is trained toward. Prints one JSON
object. Labels are read: an evaluation instrument, never a training signal.

With ``--empty-scene`` it also reads every question on its image redrawn without the objects (the
scene alone, `seed.world.redraw.render_empty_pope_images`; the oracle control's contrast image),
and reports that view, the noised view (with ``--noise-step``) alone, and the contrast and target
with the empty scene in place of the noised image: which of the two contrast images carries the
model's prior (``prior_auc`` of the view alone) and which still sees objects (``evidence_auc``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

CELLS = (("yes", True), ("yes", False), ("no", True), ("no", False))  # (label, typical)


def cell_name(label: str, typical: bool) -> str:
    return f"{'present' if label == 'yes' else 'absent'}_{'typical' if typical else 'atypical'}"


def reliance(margins: list[float], labels: list[str], typical: list[bool]) -> dict:
    """Evidence and prior AUCs and per-cell yes-shares of ``margins`` (one per question).

    labels: "yes"/"no"; typical: whether the asked object is typical of the image's scene. Every cell
    must hold at least one question.
    """
    from seed.eval.pope import margin_auc

    if not len(margins) == len(labels) == len(typical):
        raise ValueError(f"{len(margins)} margins, {len(labels)} labels, {len(typical)} typicality flags")
    cells = {}
    for label, typ in CELLS:
        idx = [i for i in range(len(margins)) if labels[i] == label and typical[i] == typ]
        if not idx:
            raise ValueError(f"no question in cell {cell_name(label, typ)}")
        cells[(label, typ)] = idx

    def auc(first: list[int], second: list[int]) -> float:  # P(margin in first > margin in second)
        return margin_auc(["yes"] * len(first) + ["no"] * len(second), [margins[i] for i in first + second])

    evidence = {
        "typical": auc(cells[("yes", True)], cells[("no", True)]),
        "atypical": auc(cells[("yes", False)], cells[("no", False)]),
    }
    prior = {
        "present": auc(cells[("yes", True)], cells[("yes", False)]),
        "absent": auc(cells[("no", True)], cells[("no", False)]),
    }
    evidence["mean"] = (evidence["typical"] + evidence["atypical"]) / 2
    prior["mean"] = (prior["present"] + prior["absent"]) / 2
    return {
        "evidence_auc": {k: round(v, 4) for k, v in evidence.items()},
        "prior_auc": {k: round(v, 4) for k, v in prior.items()},
        "yes_share": {
            cell_name(*key): round(sum(margins[i] > 0 for i in idx) / len(idx), 4)
            for key, idx in cells.items()
        },
        "n": {cell_name(*key): len(idx) for key, idx in cells.items()},
    }


def split_scores(margins: list[float], labels: list[str], splits: dict[str, list[int]]) -> dict:
    """Greedy F1 (answer "yes" where the margin is > 0), yes-ratio and AUC of each POPE split.

    splits: split name -> indices of its questions in ``margins``.
    """
    from seed.eval.pope import margin_auc, pope_metrics

    out = {}
    for split, idx in splits.items():
        split_labels = [labels[i] for i in idx]
        metrics = pope_metrics(split_labels, ["yes" if margins[i] > 0 else "no" for i in idx])
        out[split] = {
            "f1": round(metrics["f1"], 4),
            "yes_ratio": round(metrics["yes_ratio"], 4),
            "auc": round(margin_auc(split_labels, [margins[i] for i in idx]), 4),
        }
    return out


def within_image_auc(margins: list[float], labels: list[str], images: list[str]) -> float | None:
    """P(a present object's margin > an absent one's on the *same* image), ties 1/2, pooled over images.

    The image is held fixed, so what the two questions share (the image's look, its clutter, how the
    model reads it overall) cancels; only the asked objects differ. Across-image evidence minus this
    is what a view's image-level variation adds. None when no image has both labels.
    """
    from seed.eval.pope import margin_auc

    if not len(margins) == len(labels) == len(images):
        raise ValueError(f"{len(margins)} margins, {len(labels)} labels, {len(images)} images")
    by_image: dict[str, list[int]] = {}
    for i, image in enumerate(images):
        by_image.setdefault(image, []).append(i)
    wins = pairs = 0.0
    for idx in by_image.values():  # each image's AUC, weighted by its present-absent pairs
        asked = [labels[i] for i in idx]
        auc = margin_auc(asked, [margins[i] for i in idx])
        if auc is not None:
            count = asked.count("yes") * asked.count("no")
            wins, pairs = wins + auc * count, pairs + count
    return round(wins / pairs, 4) if pairs else None


def oracle_correction(margins: list[float], typical: list[bool], k: float) -> list[float]:
    """``margins`` with typical objects lowered by ``k (1 - share)`` and atypical ones raised by
    ``k share`` (``share`` the typical share of the questions): the mean margin stays."""
    share = sum(typical) / len(typical)
    return [m - k * (t - share) for m, t in zip(margins, typical, strict=True)]


def oracle_shift(margins: list[float], typical: list[bool], labels: list[str]) -> tuple[float, list[float]]:
    """The margins with a constant ``k`` taken off every typical object's and added back evenly, ``k``
    (a grid of 0.05 in [-8, 8]) the one that brings the mean prior AUC nearest 0.5: the scene prior removed with
    the world's own typical sets, the image reading left as it is. Returns ``(k, margins)``. Typical
    objects lose ``k (1 - share)`` and atypical ones gain ``k share`` (``share`` the typical share of
    the questions), so the mean margin stays where it was."""
    best = None
    for step in range(-160, 161):  # negative k: a model that says "yes" less to typical objects
        k = step * 0.05
        shifted = oracle_correction(margins, typical, k)
        gap = abs(reliance(shifted, labels, typical)["prior_auc"]["mean"] - 0.5)
        if best is None or gap < best[0] - 1e-9 or (abs(gap - best[0]) <= 1e-9 and abs(k) < abs(best[1])):
            best = (gap, k, shifted)
    return best[1], best[2]


def oracle_frontier(
    margins: list[float],
    typical: list[bool],
    labels: list[str],
    k: float,
    splits: dict[str, list[int]],
    tolerance: float = 0.01,
) -> dict:
    """The most counterfactual F1 that removing part of the prior buys while random F1 falls at most
    ``tolerance``: the oracle's correction (`oracle_shift`, full offset ``k``) applied a fraction
    0, 0.05, ..., 1 of the way. Returns the chosen ``fraction`` (the smallest among equals), its ``gain``
    (CF F1 change) and ``cost`` (random F1 change), and the whole ``curve`` of [fraction, gain, cost]."""
    wanted = {"counterfactual": splits["counterfactual"], "random": splits["random"]}
    base = split_scores(margins, labels, wanted)
    curve = []
    for step in range(21):
        part = step / 20
        scores = split_scores(oracle_correction(margins, typical, part * k), labels, wanted)
        gain = scores["counterfactual"]["f1"] - base["counterfactual"]["f1"]
        cost = scores["random"]["f1"] - base["random"]["f1"]
        curve.append([part, round(gain, 4), round(cost, 4)])
    allowed = [point for point in curve if point[2] >= -tolerance - 1e-12]
    best = max(allowed, key=lambda point: (point[1], -point[0]))
    return {"fraction": best[0], "gain": best[1], "cost": best[2], "tolerance": tolerance, "curve": curve}


def target_margins(
    clean: list[float], noised: list[float], alpha: float, adaptive: bool, beta: float
) -> list[float]:
    """The yes-minus-no margin of purify's target on a first answer token, from the two views' margins.

    Two-token reading of `seed.core.purify` (yes and no hold nearly all of a POPE answer's first-token
    mass): ``p = sigmoid(clean)``, confidence ``c = max(p, 1 - p)``, strength ``a = alpha (1 - c)`` if
    ``adaptive`` else ``alpha``; the answer the clean view finds less likely than ``beta`` times the
    other leaves the plausible set, and the target is then the other answer with certainty (margin
    +-inf); otherwise the margin is ``(1 + a) clean - a noised``.
    """
    out = []
    cut = -math.log(beta) if beta > 0 else math.inf  # |clean margin| beyond which the minority is cut
    for c, n in zip(clean, noised, strict=True):
        if abs(c) > cut:
            out.append(math.copysign(math.inf, c))
            continue
        confidence = 1 / (1 + math.exp(-abs(c)))
        a = alpha * (1 - confidence) if adaptive else alpha
        out.append((1 + a) * c - a * n)
    return out


def world_questions(data: Path) -> tuple[list[dict], dict[str, list[int]], dict]:
    """Every POPE question of the world once, with ``typical`` added; each split's questions as
    indices into that list; and the visibility check."""
    from seed.eval.pope import load_pope_questions
    from seed.model.margins import QUESTION_RE
    from seed.world.vocab import SCENE_BY_NAME

    if not (data / "annotations.json").is_file():
        raise SystemExit(
            f"{data / 'annotations.json'}: not found (a world folder written by `seed data synth`)"
        )
    annotations = json.loads((data / "annotations.json").read_text())
    images = {im["file_name"]: im for im in annotations["images"]}
    names = {c["id"]: c["name"] for c in annotations["categories"]}
    objects: dict[tuple[int, str], dict] = {}
    for a in annotations["annotations"]:
        objects.setdefault((a["image_id"], names[a["category_id"]]), a)
    seen: dict[tuple[str, str], int] = {}
    questions, splits = [], {}
    for path in sorted((data / "pope").glob("*_pope_*.json")):
        split = path.stem.rsplit("_pope_", 1)[1]
        splits[split] = []
        for q in load_pope_questions(path):
            if (q["image"], q["text"]) in seen:
                splits[split].append(seen[(q["image"], q["text"])])
                continue
            seen[(q["image"], q["text"])] = len(questions)
            splits[split].append(len(questions))
            match = QUESTION_RE.match(q["text"])
            if match is None or q["image"] not in images or images[q["image"]]["scene"] not in SCENE_BY_NAME:
                raise SystemExit(f"{path}: question {q['question_id']} names no known image, scene or object")
            image = images[q["image"]]
            typical = match.group(1) in SCENE_BY_NAME[image["scene"]].typical_names()
            questions.append({**q, "object": match.group(1), "typical": typical, "image_id": image["id"]})
    visibility = {}
    for typ in (True, False):
        drawn = [
            objects[(q["image_id"], q["object"])]
            for q in questions
            if q["label"] == "yes" and q["typical"] == typ and (q["image_id"], q["object"]) in objects
        ]
        visibility["typical" if typ else "atypical"] = {
            "present": len(drawn),
            "small": round(sum(a["size"] == "small" for a in drawn) / max(1, len(drawn)), 4),
            "occluded": round(sum(bool(a["occluded"]) for a in drawn) / max(1, len(drawn)), 4),
        }
    return questions, splits, visibility


def empty_scene_margins(
    model, processor, data: Path, questions: list[dict], prompts: list[str]
) -> list[float]:
    """Each question's first-token yes-minus-no margin on its image drawn without the objects."""
    import tempfile

    from seed.model.generate import open_image
    from seed.model.margins import first_token_margins
    from seed.world.redraw import render_empty_pope_images

    with tempfile.TemporaryDirectory(prefix="seed-empty-scene-") as folder:
        render_empty_pope_images(data, Path(folder))
        images = {n: open_image(Path(folder) / n) for n in sorted({q["image"] for q in questions})}
        ids = [f"{q['image']}|{p}" for q, p in zip(questions, prompts, strict=True)]
        margins, _ = first_token_margins(
            model, processor, [images[q["image"]] for q in questions], prompts, ids
        )
    return margins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="artifacts/base-model")
    parser.add_argument("--adapter", default=None, help="a SEED adapter folder, merged into the model")
    parser.add_argument("--data", default="data", help="world folder (use a validation world for choices)")
    parser.add_argument("--noise-step", type=int, default=None, help="also score the contrast at this step")
    parser.add_argument(
        "--noise-draws",
        type=int,
        default=1,
        help="noisings averaged into the noised view (purify.noise_draws)",
    )
    parser.add_argument("--alpha", type=float, action="append", default=None, help="contrast weight(s)")
    parser.add_argument("--beta", type=float, action="append", default=None, help="plausibility cut-off(s)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument(
        "--empty-scene",
        action="store_true",
        help="also read each question on its image without the objects (the oracle contrast image)",
    )
    args = parser.parse_args(argv)

    from bench.common import print_report
    from seed.eval.pope import build_pope_prompt
    from seed.model.generate import load_model, open_image
    from seed.model.margins import first_token_margins

    data = Path(args.data)
    questions, splits, visibility = world_questions(data)
    model, processor = load_model(args.model, adapter=args.adapter)
    images = {n: open_image(data / "images" / "eval" / n) for n in sorted({q["image"] for q in questions})}
    prompts = [build_pope_prompt(q["text"]) for q in questions]
    clean, noised = first_token_margins(
        model,
        processor,
        [images[q["image"]] for q in questions],
        prompts,
        [f"{q['image']}|{p}" for q, p in zip(questions, prompts, strict=True)],
        args.noise_step,
        0,
        draws=args.noise_draws,
    )
    labels, typical = [q["label"] for q in questions], [q["typical"] for q in questions]
    images_of = [q["image"] for q in questions]
    empty = empty_scene_margins(model, processor, data, questions, prompts) if args.empty_scene else None
    k, shifted = oracle_shift(clean, typical, labels)
    views = {"clean": clean, f"oracle prior removed (k={k:g})": shifted}
    for part in (0.25, 0.5, 0.75):  # part of the way: what a partial removal gains and costs per split
        views[f"oracle prior removed x{part:g}"] = oracle_correction(clean, typical, part * k)
    for suffix, other in (("", noised), (" with the empty scene", empty)):  # the two contrast images
        if other is None:
            continue
        for alpha in args.alpha or [1.0]:
            views[f"contrast a={alpha:g}{suffix}"] = [
                (1 + alpha) * c - alpha * n for c, n in zip(clean, other, strict=True)
            ]
            for adaptive in (False, True):
                for beta in args.beta or [0.1]:
                    strength = "adaptive" if adaptive else "fixed"
                    views[f"target a={alpha:g} {strength} beta={beta:g}{suffix}"] = target_margins(
                        clean, other, alpha, adaptive, beta
                    )
    if empty is not None:  # each contrast image's view alone: how much prior, how much object it carries
        views["empty scene view alone"] = empty
        if noised is not None:
            views["noised view alone"] = noised
    rows = {
        name: reliance(margins, labels, typical)
        | {"evidence_within_image": within_image_auc(margins, labels, images_of)}
        | {"splits": split_scores(margins, labels, splits)}
        for name, margins in views.items()
    }
    report = {"model": args.model}
    if {"counterfactual", "random"} <= splits.keys():
        report["oracle_frontier"] = oracle_frontier(clean, typical, labels, k, splits)
    report |= {
        "adapter": args.adapter,
        "data": args.data,
        "noise_step": args.noise_step,
        "noise_draws": args.noise_draws,
        "questions": len(questions),
        "visibility": visibility,
        "rows": rows,
    }
    print_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
