"""Compare base-model recipes by their probes, each recipe trained with several seeds.

    python -m bench.probe_table v4=probe_v4_s0.json,probe_v4_s1.json v4g86=probe_g_s0.json,...

Each argument is ``NAME=FILE[,FILE...]``: the `seed probe` reports of one recipe, one per training
run (a different ``--seed``, or the same seed with another thread count). The table gives, per
column, the mean and the sample standard deviation over the runs, so a difference between recipes
can be read against the spread within one. A single run screens nothing: the same recipe trained
with one and with two threads differs by about 0.03 in contrast AUC (LOG.md, session 12).

All reports must come from the same probe world and noise step; otherwise the error names the file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

COLUMNS = (
    ("tower adv", "tower_auc_adversarial"),
    ("LM CF", "lm_auc_counterfactual"),
    ("noised obj", "noised_object_auc"),
    ("noised LM CF", "noised_lm_auc_counterfactual"),
    ("contrast CF", "contrast_auc_counterfactual"),
)


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); the deviation is None for one value."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def load_reports(groups: dict[str, list[Path]]) -> dict[str, list[dict]]:
    """Read every report; all must share the probe world (``settings.data``) and noise step."""
    reference = None
    loaded: dict[str, list[dict]] = {}
    for name, paths in groups.items():
        loaded[name] = []
        for path in paths:
            try:
                report = json.loads(Path(path).read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise SystemExit(f"{path}: not a readable probe report ({err})") from err
            missing = [key for key in (*(key for _, key in COLUMNS), "settings") if key not in report]
            if missing:
                raise SystemExit(f"{path}: not a probe report, missing {missing}")
            where = (report["settings"].get("data"), report["settings"].get("noise_step"))
            if reference is None:
                reference = (path, where)
            elif where != reference[1]:
                raise SystemExit(
                    f"{path}: settings (data, noise_step) = {where}, but {reference[0]} has {reference[1]}"
                )
            loaded[name].append(report)
    return loaded


def table(loaded: dict[str, list[dict]]) -> str:
    """Markdown: one row per recipe, ``mean ± sd`` per column, and contrast minus LM."""

    def cell(values: list[float]) -> str:
        mean, sd = mean_sd(values)
        return f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"

    head = ["recipe", "runs"] + [label for label, _ in COLUMNS] + ["contrast - LM"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(COLUMNS) + 1)]
    for name, reports in loaded.items():
        cells = [cell([r[key] for r in reports]) for _, key in COLUMNS]
        gain = [r["contrast_auc_counterfactual"] - r["lm_auc_counterfactual"] for r in reports]
        lines.append("| " + " | ".join([name, str(len(reports)), *cells, cell(gain)]) + " |")
    return "\n".join(lines)


def parse_groups(items: list[str]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for item in items:
        name, sep, files = item.partition("=")
        if not sep or not name or not files:
            raise SystemExit(f"{item!r}: expected NAME=FILE[,FILE...]")
        if name in groups:
            raise SystemExit(f"{name!r} is given twice")
        groups[name] = [Path(f) for f in files.split(",") if f]
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="+", help="NAME=FILE[,FILE...]: the probe reports of one recipe")
    args = parser.parse_args(argv)
    print(table(load_reports(parse_groups(args.groups))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
