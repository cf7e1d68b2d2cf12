"""The results table and the plots a reader looks at first, from reports/metrics.json."""

from __future__ import annotations

from pathlib import Path

SPLITS = ("random", "popular", "adversarial")


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def results_table(metrics: dict) -> str:
    """A Markdown table: method x POPE F1 per split (with adversarial yes-ratio), MME total, CHAIR."""
    methods = list(
        dict.fromkeys([*metrics.get("pope", {}), *metrics.get("mme", {}), *metrics.get("chair", {})])
    )
    head = (
        "| method | POPE rand F1 | POPE pop F1 | POPE adv F1 | adv yes-ratio | MME total | CHAIR_s | CHAIR_i |"
        " fwd/token | tok/s |"
    )
    lines = [
        f"protocol: {metrics.get('protocol', '?')}",
        head,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in methods:
        pope = metrics.get("pope", {}).get(m, {})
        mme = metrics.get("mme", {}).get(m, {})
        chair = metrics.get("chair", {}).get(m, {})
        cost = metrics.get("cost", {}).get(m, {})
        cells = [_fmt(pope.get(s, {}).get("f1")) for s in SPLITS]
        cells.append(_fmt(pope.get("adversarial", {}).get("yes_ratio")))
        cells.append(_fmt(mme.get("total"), 1))
        cells += [_fmt(chair.get("chair_s")), _fmt(chair.get("chair_i"))]
        cells += [_fmt(cost.get("forwards_per_token"), 2), _fmt(cost.get("tokens_per_second"), 1)]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_plots(metrics: dict, out_dir: Path) -> list[Path]:
    """PNG plots under ``out_dir``: POPE F1 per split per method, MME per subtask per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    pope = metrics.get("pope", {})
    if pope:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.8 / max(1, len(pope))
        for i, (method, splits) in enumerate(pope.items()):
            xs = [j + i * width for j in range(len(SPLITS))]
            f1 = [splits.get(s, {}).get("f1", 0) for s in SPLITS]
            err = [
                [f - splits.get(s, {}).get("f1_ci", [f, f])[0] for f, s in zip(f1, SPLITS, strict=True)],
                [splits.get(s, {}).get("f1_ci", [f, f])[1] - f for f, s in zip(f1, SPLITS, strict=True)],
            ]
            ax.bar(xs, f1, width, yerr=err, capsize=3, label=method)
        ax.set_xticks([j + width * (len(pope) - 1) / 2 for j in range(len(SPLITS))], SPLITS)
        ax.set_ylabel("POPE F1 (95% bootstrap CI)")
        ax.set_ylim(0, 1)
        ax.legend()
        ax.set_title(f"POPE F1 per split ({metrics.get('protocol', '')})")
        fig.tight_layout()
        path = out_dir / "pope_f1.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    mme = metrics.get("mme", {})
    if mme:
        subtasks = ("existence", "count", "position", "color")
        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.8 / max(1, len(mme))
        for i, (method, scores) in enumerate(mme.items()):
            ax.bar(
                [j + i * width for j in range(len(subtasks))],
                [scores.get(s, 0) for s in subtasks],
                width,
                label=method,
            )
        ax.set_xticks([j + width * (len(mme) - 1) / 2 for j in range(len(subtasks))], subtasks)
        ax.set_ylabel("MME score (acc + acc+, max 200)")
        ax.set_ylim(0, 200)
        ax.legend()
        ax.set_title("MME hallucination subset")
        fig.tight_layout()
        path = out_dir / "mme_scores.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
