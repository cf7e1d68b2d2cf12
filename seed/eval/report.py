"""The results table and the plots a reader looks at first, from reports/metrics.json.

Plots (PNG under the reports folder; ``_sample`` is appended for the sampling protocol):

- ``pope_adv_vs_cost.png``: POPE-adversarial F1 against model forward passes per generated token,
  one point per method: what each method buys and what it costs at inference time.
- ``pope_f1.png``: F1 per POPE split per method (95% bootstrap interval; std over seeds when sampled).
- ``mme_scores.png``: MME hallucination subset, score per subtask per method.

The numbers behind each plot are also written as a JSON list of records under ``plots/`` (same
name, ``.json``), which ``dvc plots`` can draw (e.g. ``x: forwards_per_token, y: f1``).
"""

from __future__ import annotations

import json
from pathlib import Path

from seed.eval.mme import MME_SUBTASKS
from seed.eval.pope import POPE_SPLITS as SPLITS

COLOURS = {
    "base": "#7f7f7f",
    "vcd": "#ff7f0e",
    "seed": "#1f77b4",
    "seed_no_contrast": "#9ecae1",
    "bias": "#d62728",
    "seed_oracle": "#2ca02c",
}


def _fmt(value, digits: int = 3, std=None) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return text if std is None else f"{text}±{std:.{digits}f}"


def _cell(metrics: dict, key: str, digits: int = 3) -> str:
    return _fmt(metrics.get(key), digits, metrics.get(f"{key}_std"))


def _methods(metrics: dict) -> list[str]:
    keys = ("pope", "mme", "chair", "cost")
    return list(dict.fromkeys(m for key in keys for m in metrics.get(key, {})))


def results_table(metrics: dict) -> str:
    """Markdown: a summary table (method x POPE F1 per split, MME, CHAIR, cost), then a POPE table
    (method x split: F1 with its 95% interval, yes-ratio and the AUC of the yes-minus-no margin).

    Under the sampling protocol each cell reads ``mean±std`` over the seeds.
    """
    protocol = metrics.get("protocol", "?")
    seeds = metrics.get("seeds")
    methods = _methods(metrics)
    splits = [s for s in SPLITS if any(s in metrics.get("pope", {}).get(m, {}) for m in methods)]
    short = {"random": "rand", "popular": "pop", "adversarial": "adv", "counterfactual": "CF"}
    head = "| method | " + " | ".join(f"POPE {short[s]} F1" for s in splits)
    head += " | MME total | CHAIR_s | CHAIR_i | fwd/token | tok/s |"
    lines = [
        f"protocol: {protocol}" + (f" (mean±std over seeds {seeds})" if seeds else ""),
        head,
        "|---|" + "---:|" * (len(splits) + 5),
    ]
    for m in methods:
        pope = metrics.get("pope", {}).get(m, {})
        mme = metrics.get("mme", {}).get(m, {})
        chair = metrics.get("chair", {}).get(m, {})
        cost = metrics.get("cost", {}).get(m, {})
        cells = [_cell(pope.get(s, {}), "f1") for s in splits]
        cells.append(_cell(mme, "total", 1))
        cells += [_cell(chair, "chair_s"), _cell(chair, "chair_i")]
        cells += [_fmt(cost.get("forwards_per_token"), 2), _fmt(cost.get("tokens_per_second"), 1)]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| POPE split | method | F1 | F1 95% CI | yes-ratio | AUC |",
        "|---|---|---:|---|---:|---:|",
    ]
    for split in splits:
        for m in methods:
            entry = metrics.get("pope", {}).get(m, {}).get(split)
            if not entry:
                continue
            ci = entry.get("f1_ci")
            interval = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"
            cells = [_cell(entry, "f1"), interval, _cell(entry, "yes_ratio"), _cell(entry, "auc")]
            lines.append(f"| {split} | {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _error(entry: dict, key: str) -> tuple[float, float]:
    """(below, above) error bar of ``entry[key]``: its std over seeds, else its bootstrap interval."""
    value = entry.get(key) or 0.0
    if entry.get(f"{key}_std") is not None:
        return entry[f"{key}_std"], entry[f"{key}_std"]
    ci = entry.get(f"{key}_ci")
    if ci and None not in ci:
        return max(0.0, value - ci[0]), max(0.0, ci[1] - value)
    return 0.0, 0.0


def adversarial_cost_points(metrics: dict) -> list[dict]:
    """One record per method with POPE-adversarial F1 and its cost: the data of ``pope_adv_vs_cost``."""
    points = []
    for method in _methods(metrics):
        adversarial = metrics.get("pope", {}).get(method, {}).get("adversarial")
        cost = metrics.get("cost", {}).get(method, {})
        if adversarial is None or cost.get("forwards_per_token") is None:
            continue
        below, above = _error(adversarial, "f1")
        points.append(
            {
                "method": method,
                "forwards_per_token": cost["forwards_per_token"],
                "tokens_per_second": cost.get("tokens_per_second"),
                "f1": adversarial["f1"],
                "f1_low": adversarial["f1"] - below,
                "f1_high": adversarial["f1"] + above,
            }
        )
    return points


def _save(fig, path: Path, plt) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _write_records(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n")


def write_plots(metrics: dict, out_dir: Path) -> list[Path]:
    """PNG plots under ``out_dir`` and their data under ``out_dir/plots/``; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    suffix = "" if metrics.get("protocol", "greedy") == "greedy" else "_sample"
    protocol = metrics.get("protocol", "")
    written = []

    points = adversarial_cost_points(metrics)
    if points:
        fig, ax = plt.subplots(figsize=(5, 3.8))
        for p in points:
            # methods at the same cost (base and seed): the higher F1 is labelled above, the lower below
            same_cost = sum(
                q["forwards_per_token"] == p["forwards_per_token"] and q["f1"] > p["f1"] for q in points
            )
            ax.errorbar(
                p["forwards_per_token"],
                p["f1"],
                yerr=[[p["f1"] - p["f1_low"]], [p["f1_high"] - p["f1"]]],
                fmt="o",
                markersize=9,
                capsize=4,
                color=COLOURS.get(p["method"]),
                label=p["method"],
            )
            ax.annotate(
                p["method"],
                (p["forwards_per_token"], p["f1"]),
                textcoords="offset points",
                xytext=(8, (4, -14, 18, -28)[same_cost % 4]),
            )
        top = max(p["forwards_per_token"] for p in points)
        ax.set_xlim(0, max(3.0, top + 1.0))
        ax.set_xlabel("model forward passes per generated token")
        ax.set_ylabel("POPE adversarial F1")
        ax.set_title(f"Hallucination vs inference cost ({protocol})")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        written.append(_save(fig, out_dir / f"pope_adv_vs_cost{suffix}.png", plt))
        _write_records(out_dir / "plots" / f"pope_adv_vs_cost{suffix}.json", points)

    pope = metrics.get("pope", {})
    if pope:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.8 / max(1, len(pope))
        records = []
        present = [s for s in SPLITS if any(s in splits for splits in pope.values())]
        for i, (method, splits) in enumerate(pope.items()):
            entries = [splits.get(s, {}) for s in present]
            errors = [_error(e, "f1") for e in entries]
            ax.bar(
                [j + i * width for j in range(len(present))],
                [e.get("f1", 0) for e in entries],
                width,
                yerr=[[lo for lo, _ in errors], [hi for _, hi in errors]],
                capsize=3,
                color=COLOURS.get(method),
                label=method,
            )
            records += [
                {"method": method, "split": s, "f1": e.get("f1")}
                for s, e in zip(present, entries, strict=True)
            ]
        ax.set_xticks([j + width * (len(pope) - 1) / 2 for j in range(len(present))], present)
        ax.set_ylabel("POPE F1" + (" (± std over seeds)" if suffix else " (95% bootstrap CI)"))
        ax.set_ylim(0, 1)
        ax.legend()
        ax.set_title(f"POPE F1 per split ({protocol})")
        written.append(_save(fig, out_dir / f"pope_f1{suffix}.png", plt))
        _write_records(out_dir / "plots" / f"pope_f1{suffix}.json", records)

    mme = metrics.get("mme", {})
    if mme:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.8 / max(1, len(mme))
        records = []
        for i, (method, scores) in enumerate(mme.items()):
            ax.bar(
                [j + i * width for j in range(len(MME_SUBTASKS))],
                [scores.get(s, 0) for s in MME_SUBTASKS],
                width,
                yerr=[scores.get(f"{s}_std", 0) for s in MME_SUBTASKS],
                capsize=3,
                color=COLOURS.get(method),
                label=method,
            )
            records += [{"method": method, "subtask": s, "score": scores.get(s)} for s in MME_SUBTASKS]
        ax.set_xticks([j + width * (len(mme) - 1) / 2 for j in range(len(MME_SUBTASKS))], MME_SUBTASKS)
        ax.set_ylabel("MME score (acc + acc+, max 200)")
        ax.set_ylim(0, 200)
        ax.legend()
        ax.set_title(f"MME hallucination subset ({protocol})")
        written.append(_save(fig, out_dir / f"mme_scores{suffix}.png", plt))
        _write_records(out_dir / "plots" / f"mme_scores{suffix}.json", records)
    return written
