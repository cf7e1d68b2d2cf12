"""What does the clean-minus-noised contrast do to yes/no answers? A decoding-time probe.

On one POPE split of a world (default: the counterfactual split of the validation world), reads the
first answer token's yes-minus-no margin on the clean image and on the noised one (the view SEED and
VCD contrast with; `seed.model.margins.first_token_margins`), and reports, for present ("yes") and absent
("no") objects apart, the mean margins and the share answered "yes" by the clean view, the noised view
and the contrast ``(1 + a) clean - a noised``. It also scores a *centred* contrast, whose noised
margin has the image's mean removed first, the mean taken over existence questions about every
category of the vocabulary (the same questions for every image: no label, no question mix read):

    python -m bench.contrast_probe --model artifacts/base-model --data /tmp/valworld [--noise-step 900]

Prints one JSON object (and writes it with --out). The numbers in LOG.md (2026-12-05) come from it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def rates(margins: list[float], labels: list[str]) -> dict[str, float]:
    """AUC, TPR and FPR at margin 0, and the F1 they give, of margins against yes/no labels."""
    from seed.eval.pope import margin_auc

    positives, negatives = labels.count("yes"), labels.count("no")
    tp = sum(1 for m, label in zip(margins, labels, strict=True) if label == "yes" and m > 0)
    fp = sum(1 for m, label in zip(margins, labels, strict=True) if label == "no" and m > 0)
    tpr, fpr = tp / positives, fp / negatives
    f1 = 2 * tp / (2 * tp + fp + (positives - tp)) if tp else 0.0
    return {
        "auc": round(margin_auc(labels, margins), 4),
        "tpr": round(tpr, 4),
        "fpr": round(fpr, 4),
        "f1": round(f1, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="artifacts/base-model")
    parser.add_argument("--data", default="data", help="world folder (use a validation world for choices)")
    parser.add_argument("--split", default="counterfactual")
    parser.add_argument("--noise-step", type=int, default=900)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    import torch

    from bench.common import print_report
    from seed.eval.pope import build_pope_prompt
    from seed.model.generate import load_model, open_image
    from seed.model.margins import first_token_margins
    from seed.world.text import existence_question
    from seed.world.vocab import CATEGORY_NAMES

    torch.set_num_threads(1)
    data = Path(args.data)
    model, processor = load_model(args.model)
    lines = (data / "pope" / f"world_pope_{args.split}.json").read_text().splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    names = sorted({q["image"] for q in questions})
    images = {name: open_image(data / "images" / "eval" / name) for name in names}
    prompts = [build_pope_prompt(q["text"]) for q in questions]
    keys = [f"{q['image']}|{p}" for q, p in zip(questions, prompts, strict=True)]
    clean, noised = first_token_margins(
        model, processor, [images[q["image"]] for q in questions], prompts, keys, args.noise_step, 0
    )
    # the image's mean noised margin over one existence question per category of the vocabulary
    every = [(name, build_pope_prompt(existence_question(c))) for name in names for c in CATEGORY_NAMES]
    _, noised_every = first_token_margins(
        model,
        processor,
        [images[n] for n, _ in every],
        [p for _, p in every],
        [f"{n}|{p}" for n, p in every],
        args.noise_step,
        0,
        with_clean=False,
    )
    sums: dict[str, list[float]] = defaultdict(list)
    for (name, _), margin in zip(every, noised_every, strict=True):
        sums[name].append(margin)
    image_mean = {name: sum(v) / len(v) for name, v in sums.items()}
    centred = [n - image_mean[q["image"]] for n, q in zip(noised, questions, strict=True)]
    # for comparison only, not label-free: the mean over the image's own POPE questions, whose mix
    # (three present, three absent objects per image) is the benchmark's design
    asked: dict[str, list[float]] = defaultdict(list)
    for n, q in zip(noised, questions, strict=True):
        asked[q["image"]].append(n)
    pope_mean = {name: sum(v) / len(v) for name, v in asked.items()}
    centred_pope = [n - pope_mean[q["image"]] for n, q in zip(noised, questions, strict=True)]

    labels = [q["label"] for q in questions]
    by_label = {}
    for label in ("yes", "no"):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        by_label[label] = {
            "n": len(idx),
            "clean_mean": round(sum(clean[i] for i in idx) / len(idx), 4),
            "noised_mean": round(sum(noised[i] for i in idx) / len(idx), 4),
            "clean_yes_share": round(sum(clean[i] > 0 for i in idx) / len(idx), 4),
            "noised_yes_share": round(sum(noised[i] > 0 for i in idx) / len(idx), 4),
        }
    contrasts = {"clean": rates(clean, labels)}
    for name, view in (("noised", noised), ("centred", centred), ("centred on POPE's mix", centred_pope)):
        for alpha in (1.0, 3.0):
            margins = [(1 + alpha) * c - alpha * n for c, n in zip(clean, view, strict=True)]
            contrasts[f"{name}, a={alpha:g}"] = rates(margins, labels)
    report = {
        "model": args.model,
        "data": args.data,
        "split": args.split,
        "noise_step": args.noise_step,
        "by_label": by_label,
        "contrasts": contrasts,
    }
    print_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
