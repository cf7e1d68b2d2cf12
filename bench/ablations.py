"""SEED ablations: one round per setting, POPE F1 and CHAIR under greedy decoding, as a table.

Each row runs `seed purify` and `seed distill` with one setting changed from params.yaml's defaults and
evaluates the merged model on POPE (random, popular, adversarial) and CHAIR; the "2 rounds" row starts a second
round from the default row's merged model. The base model is evaluated once, in the same run.

    python bench/ablations.py [--model artifacts/base-model] [--data data] [--workdir /tmp/ablations]
                              [--only default,forward_kl,...]

Prints the table (and writes it with the raw metrics to WORKDIR/ablations.{md,json}).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# name -> (purify flags, distill flags); "two_rounds" is built on "default"
SETTINGS: dict[str, tuple[list[str], list[str]]] = {
    "default": ([], []),
    "forward_kl": ([], ["--loss", "forward_kl"]),
    "fixed_strength": (["--adaptive", "false"], []),
    "cd_alpha_3": (["--cd-alpha", "3"], []),
    "noise_step_900": (["--noise-step", "900"], []),
    "two_rounds": ([], []),
}


def seed_cli(*args: str) -> float:
    """Run ``seed ARGS`` in a subprocess; returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "seed.cli", *args], check=True)
    return time.perf_counter() - start


def pope_row(reports: Path) -> dict:
    metrics = json.loads((reports / "metrics.json").read_text())
    method = "seed" if "seed" in metrics["pope"] else "base"
    pope = metrics["pope"][method]
    chair = metrics["chair"][method]
    return {split: round(pope[split]["f1"], 4) for split in ("random", "popular", "adversarial")} | {
        "adv_yes_ratio": round(pope["adversarial"]["yes_ratio"], 4),
        "chair_s": round(chair["chair_s"], 4),
        "chair_i": round(chair["chair_i"], 4),
    }


def evaluate(model: Path, data: Path, out: Path, adapter: Path | None = None) -> dict:
    args = [
        "evaluate",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--benchmarks",
        "pope,chair",
    ]
    args += ["--methods", "seed" if adapter else "base"] + (["--adapter", str(adapter)] if adapter else [])
    seed_cli(*args)
    return pope_row(out)


def one_round(name: str, model: Path, data: Path, work: Path, flags: tuple[list[str], list[str]]) -> dict:
    """Purify with ``model`` as generator and teacher, distil an adapter on it, evaluate the merge."""
    targets, adapter, merged = work / f"{name}-targets", work / f"{name}-adapter", work / f"{name}-merged"
    purify_s = seed_cli(
        "purify", "--model", str(model), "--data", str(data), "--out", str(targets), *flags[0]
    )
    distill_s = seed_cli(
        "distill", "--model", str(model), "--data", str(data), "--targets", str(targets),
        "--out", str(adapter), "--merged", str(merged), *flags[1],
    )  # fmt: skip
    row = evaluate(model, data, work / f"{name}-reports", adapter=adapter)
    return row | {"purify_s": round(purify_s, 1), "distill_s": round(distill_s, 1), "merged": str(merged)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="artifacts/base-model")
    parser.add_argument("--data", default="data")
    parser.add_argument("--workdir", default="/tmp/ablations")
    parser.add_argument("--only", default=",".join(SETTINGS), help="comma-separated rows to run")
    args = parser.parse_args()
    model, data, work = Path(args.model), Path(args.data), Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {"base": evaluate(model, data, work / "base-reports")}
    for name in args.only.split(","):
        if name == "two_rounds":
            first = rows.get("default") or one_round("default", model, data, work, SETTINGS["default"])
            rows["default"] = first
            rows[name] = one_round(name, Path(first["merged"]), data, work, SETTINGS[name])
        elif name not in rows:
            rows[name] = one_round(name, model, data, work, SETTINGS[name])
        (work / "ablations.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| setting | POPE rand F1 | pop F1 | adv F1 | adv yes-ratio | CHAIR_s | CHAIR_i | purify s | distill s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        times = f"{r.get('purify_s', '')} | {r.get('distill_s', '')}"
        lines.append(
            f"| {name} | {r['random']:.3f} | {r['popular']:.3f} | {r['adversarial']:.3f} | "
            f"{r['adv_yes_ratio']:.3f} | {r['chair_s']:.3f} | {r['chair_i']:.3f} | {times} |"
        )
    table = "\n".join(lines)
    (work / "ablations.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
