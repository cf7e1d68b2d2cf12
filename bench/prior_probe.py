"""Does the noised image isolate this model's prior? First-token P(yes) on POPE, clean vs noised.

For the first N questions of each POPE split, the yes/no logits of the first answer token are read
on the clean image and on the image noised at several diffusion steps; the table shows the mean
P(yes) per label, and the F1 of deciding yes/no by the contrasted logits (1 + a) l - a n (VCD on
the first token). Prints the numbers behind the SEED finding in LOG.md.

    python bench/prior_probe.py [--model artifacts/base-model] [--data data] [--n 600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from seed.core.noise import add_diffusion_noise, sample_seed
from seed.eval.pope import build_pope_prompt, load_pope_questions, pope_metrics, ranking_auc
from seed.model.generate import load_model, open_image, prompt_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="artifacts/base-model")
    parser.add_argument("--data", default="data")
    parser.add_argument("--n", type=int, default=600, help="questions per split")
    parser.add_argument("--steps", default="500,800,950,999", help="noise steps to try")
    args = parser.parse_args()
    model, processor = load_model(args.model)
    tok = processor.tokenizer
    yes_no = [tok.convert_tokens_to_ids("Yes"), tok.convert_tokens_to_ids("No")]
    data = Path(args.data)
    for split in ("adversarial", "popular", "random"):
        questions = load_pope_questions(next((data / "pope").glob(f"*_pope_{split}.json")))[: args.n]
        images = [open_image(data / "images" / "eval" / q["image"]) for q in questions]
        texts = [prompt_text(processor, build_pope_prompt(q["text"])) for q in questions]
        enc = processor(images=images, text=texts, padding=True, padding_side="left", return_tensors="pt")
        labels = [q["label"] for q in questions]
        is_yes = torch.tensor([label == "yes" for label in labels])
        seeds = [sample_seed(str(q["question_id"])) for q in questions]
        with torch.no_grad():
            clean = model(**enc).logits[:, -1, yes_no]
            p = clean.softmax(-1)[:, 0]
            print(f"{split}: clean P(yes) present {p[is_yes].mean():.3f} absent {p[~is_yes].mean():.3f}")
            for step in map(int, args.steps.split(",")):
                noised_pixels = add_diffusion_noise(enc["pixel_values"], step, seeds=seeds)
                noised = model(**{**enc, "pixel_values": noised_pixels}).logits[:, -1, yes_no]
                pn = noised.softmax(-1)[:, 0]
                line = f"  T={step}: noised P(yes) present {pn[is_yes].mean():.3f} absent {pn[~is_yes].mean():.3f}"
                for alpha in (1.0, 3.0):
                    s = (1 + alpha) * clean - alpha * noised
                    preds = ["yes" if y > n else "no" for y, n in s.tolist()]
                    m = pope_metrics(labels, preds)
                    line += (
                        f" | alpha {alpha:g}: F1 {m['f1']:.3f} yes-ratio {m['yes_ratio']:.2f}"
                        f" AUC {ranking_auc(s[:, 0] - s[:, 1], is_yes):.3f}"
                    )
                print(line)
            preds = ["yes" if y > n else "no" for y, n in clean.tolist()]
            margin = clean[:, 0] - clean[:, 1]
            # the best F1 of any threshold on the clean margin: a diagnostic ceiling, tuned on the test
            ceiling = max(
                pope_metrics(labels, ["yes" if m > t else "no" for m in margin.tolist()])["f1"]
                for t in torch.linspace(-3, 3, 61).tolist()
            )
            decision = pope_metrics(labels, preds)
            print(
                f"  clean decision F1 {decision['f1']:.3f} yes-ratio {decision['yes_ratio']:.2f}, "
                f"AUC {ranking_auc(margin, is_yes):.3f}, best-threshold F1 {ceiling:.3f}"
            )


if __name__ == "__main__":
    main()
