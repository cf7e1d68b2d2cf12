"""Is one method's CHAIR_s lower than another's beyond chance? A paired bootstrap over the same images.

Both methods caption the same CHAIR images (``reports/answers/<method>/chair_captions.jsonl``), so the
difference is judged per image: how many captions only A hallucinates in, how many only B, and a 95%
interval of CHAIR_s(B) - CHAIR_s(A) from resampling images with replacement.

    python bench/paired_chair.py [--reports reports] [--data data] [--a base] [--b seed]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from seed.eval.chair import load_coco_instances, load_synonyms, score_caption


def hallucinated(answers: Path, truth: dict, synonyms: dict) -> dict:
    """image_id -> True when the caption names at least one object the image does not hold."""
    out = {}
    for line in answers.read_text().splitlines():
        record = json.loads(line)
        out[record["image_id"]] = bool(
            score_caption(record["caption"], truth[record["image_id"]], synonyms)["hallucinated"]
        )
    return out


def paired_interval(
    a: list[bool], b: list[bool], resamples: int, seed: int = 0
) -> tuple[float, float, float]:
    """(mean(b) - mean(a), 2.5th and 97.5th percentile of the same difference over image resamples)."""
    rng = random.Random(seed)
    n = len(a)
    diffs = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(sum(b[i] - a[i] for i in idx) / n)
    diffs.sort()
    return (sum(b) - sum(a)) / n, diffs[int(0.025 * resamples)], diffs[int(0.975 * resamples) - 1]


def check_world(metrics_path: Path, flags: dict[str, list[bool]], data: Path) -> None:
    """Exit unless the CHAIR_s recomputed here equals the one in ``metrics.json`` for each method:
    a different value means ``--data`` is not the world that the answers were scored on."""
    if not metrics_path.is_file():
        return
    chair = json.loads(metrics_path.read_text()).get("chair", {})
    for method, values in flags.items():
        logged = chair.get(method, {}).get("chair_s")
        mine = sum(values) / len(values)
        if logged is not None and abs(logged - mine) > 1e-9:
            raise SystemExit(
                f"{metrics_path}: CHAIR_s of {method} is {logged:.3f}, but {data}'s annotations give "
                f"{mine:.3f}; pass --data with the world these answers were scored on"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--data", default="data")
    parser.add_argument("--a", default="base")
    parser.add_argument("--b", default="seed")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    data, reports = Path(args.data), Path(args.reports)
    synonyms = load_synonyms(data / "synonyms.txt")
    truth = load_coco_instances(data / "annotations.json")
    first = hallucinated(reports / "answers" / args.a / "chair_captions.jsonl", truth, synonyms)
    second = hallucinated(reports / "answers" / args.b / "chair_captions.jsonl", truth, synonyms)
    images = sorted(first.keys() & second.keys())
    a, b = [first[i] for i in images], [second[i] for i in images]
    check_world(reports / "metrics.json", {args.a: a, args.b: b}, data)
    diff, low, high = paired_interval(a, b, args.resamples)
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    print(
        f"{len(images)} images: CHAIR_s {args.a} {sum(a) / len(a):.3f}, {args.b} {sum(b) / len(b):.3f}; "
        f"hallucinated only by {args.a}: {only_a}, only by {args.b}: {only_b}; "
        f"difference {diff:+.3f}, 95% interval [{low:+.3f}, {high:+.3f}]"
    )


if __name__ == "__main__":
    main()
