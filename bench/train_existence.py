"""Has a base model learned the existence question at all? Its answers on its own training images.

    python -m bench.train_existence --model M [--model M2 ...] --data data --images 250

Reads the first ``--images`` conversations of the world's training split, keeps their existence turns
("Is there a ...? Answer the question using a single word or phrase."), and scores the first answer
token's yes-minus-no margin (`seed.model.margins.first_token_margins`, as the POPE evaluation reads it)
against the training answer: AUC, yes-ratio, accuracy. A model that answers "yes" everywhere on
held-out images may have memorised its training images (high AUC here) or never learned the question
(AUC near 0.5 here); the final training loss cannot tell the two apart (LOG.md, session 19).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SUFFIX = "Answer the question using a single word or phrase."


def existence_turns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """``(image, question, "yes"|"no")`` for every existence turn of ``rows`` (conversations.json rows)
    asked with the POPE suffix and answered Yes or No."""
    from seed.model.margins import QUESTION_RE

    out = []
    for row in rows:
        turns = row["conversations"]
        for asked, answer in zip(turns[0::2], turns[1::2], strict=False):
            question = asked["value"].replace("<image>\n", "")
            if QUESTION_RE.match(question) and SUFFIX in question and answer["value"] in ("Yes", "No"):
                out.append((row["image"], question, answer["value"].lower()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="model folder (repeatable)")
    parser.add_argument("--data", default="data", help="the world the models were trained on")
    parser.add_argument("--images", type=int, default=250, help="training conversations read")
    args = parser.parse_args(argv)

    from seed.eval.pope import margin_auc
    from seed.files.conversation import load_conversations
    from seed.model.generate import load_model, open_image
    from seed.model.margins import first_token_margins

    data = Path(args.data)
    rows = load_conversations(data / "train" / "conversations.json", require_answers=True)[: args.images]
    turns = existence_turns(rows)
    images = {name: open_image(data / "images" / "train" / name) for name in {t[0] for t in turns}}
    labels = [t[2] for t in turns]
    for model_dir in args.model:
        model, processor = load_model(model_dir)
        margins, _ = first_token_margins(
            model,
            processor,
            [images[t[0]] for t in turns],
            [t[1] for t in turns],
            [str(i) for i in range(len(turns))],
        )
        said_yes = [m > 0 for m in margins]
        report = {
            "model": model_dir,
            "questions": len(turns),
            "auc": round(margin_auc(labels, margins), 4),
            "yes_ratio": round(sum(said_yes) / len(turns), 4),
            "accuracy": round(
                sum(y == (lab == "yes") for y, lab in zip(said_yes, labels, strict=True)) / len(turns), 4
            ),
            "true_yes_ratio": round(labels.count("yes") / len(turns), 4),
        }
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
