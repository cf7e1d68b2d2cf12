"""Choose SEED's settings on a validation world, never on the test split.

Each row of the grid is one SEED round (purify -> distill) from the same base model, trained on the
data folder's unlabelled SEED split (redrawn with the row's question pool and size; its images never
change), and scored on a *validation world*: the same world recipe drawn with another seed, whose
evaluation images the test split never sees. The base model and SEED without contrast are scored
the same way, as the reference rows. Scores are the POPE splits of the validation world (the
counterfactual split first), greedy: F1, yes-ratio and the AUC of the yes-minus-no margin.

    python bench/seed_select.py --model artifacts/base-model --data data --out reports/seed_select.json \\
        [--grid default] [--validation-seed 1] [--workdir /tmp/seed-select]

Rows are named ``pool-questions/noise_step/cd_alpha/adaptive|fixed/epochs/max_samples``; see GRIDS.
A finished row is kept in ``--out`` and skipped on a rerun, so the search can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from seed.files.atomic import write_json

# (question pool, questions per image, noise_step, cd_alpha, adaptive, epochs, max_samples)
GRIDS = {
    "default": [
        ("typical", 3, 500, 1.0, True, 1, 0),  # params.yaml's settings on today's split
        ("all", 12, 500, 0.0, True, 1, 5200),  # no contrast (plain self-distillation), all-category split
        ("all", 12, 500, 1.0, True, 1, 5200),  # params.yaml's strength on the all-category split
        ("all", 12, 900, 3.0, True, 1, 5200),
        ("all", 12, 900, 3.0, False, 1, 5200),
        ("all", 12, 700, 3.0, True, 1, 5200),
    ],
    "core": [  # the no-contrast control and the two strongest rows of "default"
        ("all", 12, 500, 0.0, True, 1, 5200),
        ("all", 12, 900, 3.0, True, 1, 5200),
        ("all", 12, 900, 3.0, False, 1, 5200),
    ],
    "wide": [  # "core" plus a stronger contrast and a second epoch
        ("all", 12, 500, 0.0, True, 1, 5200),
        ("all", 12, 900, 3.0, True, 1, 5200),
        ("all", 12, 900, 3.0, False, 1, 5200),
        ("all", 12, 900, 5.0, True, 1, 5200),
        ("all", 12, 900, 3.0, True, 2, 5200),
    ],
    "contrast": [  # "core" plus a stronger contrast: a larger alpha, a later noise step
        ("all", 12, 500, 0.0, True, 1, 5200),
        ("all", 12, 900, 3.0, True, 1, 5200),
        ("all", 12, 900, 3.0, False, 1, 5200),
        ("all", 12, 900, 5.0, True, 1, 5200),
        ("all", 12, 999, 3.0, True, 1, 5200),
        ("all", 12, 999, 5.0, True, 1, 5200),
    ],
    "mixed": [  # a SEED split with more "yes" answers: half typical objects, half any other category
        ("mixed", 12, 500, 0.0, True, 1, 5200),
        ("mixed", 12, 900, 3.0, True, 1, 5200),
        ("mixed", 12, 900, 3.0, False, 1, 5200),
    ],
    "centre": [  # the noised answer margin centred per image (purify.centre: image) against plain
        ("all", 12, 500, 0.0, True, 1, 5200),
        ("all", 12, 900, 3.0, True, 1, 5200),
        ("all", 12, 900, 3.0, True, 1, 5200, "image"),
        ("all", 12, 900, 3.0, False, 1, 5200, "image"),
        ("all", 12, 900, 2.0, True, 1, 5200, "image"),
        ("all", 12, 700, 3.0, True, 1, 5200, "image"),
    ],
    "centre-weight": [  # centring partly (weight 0.5) or by one mean over the whole split
        ("all", 12, 900, 3.0, True, 1, 5200, "image", 0.5),
        ("all", 12, 900, 3.0, True, 1, 5200, "split"),
        ("all", 12, 900, 3.0, True, 1, 5200, "split", 0.5),
    ],
    "base-model": [  # two rows to compare base models: the no-contrast control and params.yaml's default
        ("all", 12, 500, 0.0, True, 1, 5200),
        ("all", 12, 900, 3.0, True, 1, 5200, "split"),
    ],
    "fixed": [  # params.yaml's default with fixed strength: its targets keep less of the prior
        ("all", 12, 900, 3.0, False, 1, 5200, "split"),
    ],
    "draws": [  # params.yaml's default, and it with the noised view averaged over 4 noise draws
        ("all", 12, 900, 3.0, True, 1, 5200, "split"),
        ("all", 12, 900, 3.0, True, 1, 5200, "split", 1.0, 4),
    ],
    "balance": [  # the default before session 17, and it with the loss balanced by answer (distill.balance: answer)
        ("all", 12, 900, 3.0, True, 1, 5200, "split"),
        ("all", 12, 900, 3.0, True, 1, 5200, "split", 1.0, 1, "answer"),
    ],
    "balance-fixed": [  # the balanced row with fixed strength: more prior removed where the model is sure
        ("all", 12, 900, 3.0, False, 1, 5200, "split", 1.0, 1, "answer"),
    ],
    "balance-controls": [  # the balanced default's no-contrast control, and it with fixed strength
        ("all", 12, 900, 0.0, True, 1, 5200, "split", 1.0, 1, "answer"),
        ("all", 12, 900, 3.0, False, 1, 5200, "split", 1.0, 1, "answer"),
    ],
    "balance-strength": [  # the balanced default with a weaker contrast: smaller alpha, half-centred
        ("all", 12, 900, 2.0, True, 1, 5200, "split", 1.0, 1, "answer"),
        ("all", 12, 900, 3.0, True, 1, 5200, "split", 0.5, 1, "answer"),
    ],
    "rate": [  # the balanced default centred to keep the split's "yes" rate (purify.centre: rate), and unbalanced
        ("all", 12, 900, 3.0, True, 1, 5200, "rate", 1.0, 1, "answer"),
        ("all", 12, 900, 3.0, True, 1, 5200, "rate"),
    ],
    "oracle": [  # the oracle-prior control on the validation world: the scene without its objects as the
        # contrast image, without centring and with the default's (rate)
        ("all", 12, 900, 3.0, True, 1, 5200, "none", 1.0, 1, "answer", "oracle"),
        ("all", 12, 900, 3.0, True, 1, 5200, "rate", 1.0, 1, "answer", "oracle"),
    ],
    "quick": [
        ("all", 4, 900, 0.0, True, 1, 200),
        ("all", 4, 900, 3.0, True, 1, 200),
    ],
}


def row_name(row: tuple) -> str:
    """``pool-questions/step/alpha/strength/epochs/samples``, then ``/centred`` for ``centre: image``,
    ``/centred-split`` or ``/centred-rate`` for ``centre: split`` or ``rate``, ``x<weight>`` for a ``centre_weight`` below 1, and
    ``/draws<K>`` for ``noise_draws`` K above 1 (the row's optional 10th field), ``/balanced`` for
    ``distill.balance: answer`` (its optional 11th field), ``/oracle`` for the oracle contrast image
    (its optional 12th field)."""
    pool, questions, step, alpha, adaptive, epochs, samples, *centre = row
    strength = "adaptive" if adaptive else "fixed"
    mode, weight = centre_of(row)
    tail = "" if mode == "none" else "/centred" + ("" if mode == "image" else f"-{mode}")
    tail += f"x{weight:g}" if weight != 1 else ""
    tail += f"/draws{draws_of(row)}" if draws_of(row) != 1 else ""
    tail += "/balanced" if balance_of(row) == "answer" else ""
    tail += "/oracle" if contrast_of(row) == "oracle" else ""
    return f"{pool}-{questions}/{step}/{alpha:g}/{strength}/{epochs}/{samples or 'all'}{tail}"


def centre_of(row: tuple) -> tuple[str, float]:
    """A row's ``(purify.centre, purify.centre_weight)``: its optional 8th and 9th fields."""
    extra = row[7:]
    return (extra[0] if extra else "none"), (float(extra[1]) if len(extra) > 1 else 1.0)


def draws_of(row: tuple) -> int:
    """A row's ``purify.noise_draws``: its optional 10th field (default 1)."""
    return int(row[9]) if len(row) > 9 else 1


def balance_of(row: tuple) -> str:
    """A row's ``distill.balance``: its optional 11th field (default "none")."""
    return str(row[10]) if len(row) > 10 else "none"


def contrast_of(row: tuple) -> str:
    """A row's contrast image: "noised" (default) or "oracle" (`seed data oracle`), its optional 12th field."""
    return str(row[11]) if len(row) > 11 else "noised"


def world_variant(data: Path, out: Path, **overrides) -> Path:
    """The data folder's world drawn again with ``overrides`` (built once, reused)."""
    from seed.world.redraw import redraw_world, world_config

    wanted = dataclasses.asdict(dataclasses.replace(world_config(data), **overrides))
    if (out / "world.json").exists() and dataclasses.asdict(world_config(out)) == wanted:
        return out
    return redraw_world(data, out, **overrides)


def pope_scores(model_dir: Path, adapter: Path | None, world: Path, work: Path, batch_size: int) -> dict:
    """Greedy POPE on every split of ``world``: {split: {f1, accuracy, yes_ratio, auc, f1_ci}}."""
    from seed.stages.evaluate import EvaluateConfig, MethodSpec, evaluate_methods

    config = EvaluateConfig(benchmarks=["pope"], batch_size=batch_size, bootstrap_resamples=200)
    metrics = evaluate_methods(
        model_dir, world, work, config, {"m": MethodSpec(adapter=adapter)}, "metrics.json", progress=False
    )
    keep = ("f1", "accuracy", "yes_ratio", "auc", "f1_ci")
    return {split: {k: m.get(k) for k in keep} for split, m in metrics["pope"]["m"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="artifacts/base-model")
    parser.add_argument("--data", default="data", help="the world whose SEED split trains (default data)")
    parser.add_argument("--out", default="reports/seed_select.json")
    parser.add_argument("--workdir", default="/tmp/seed-select")
    parser.add_argument("--grid", default="default", choices=sorted(GRIDS))
    parser.add_argument("--validation-seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from seed.controls import train_adapter
    from seed.stages import load_stage_config

    model, data, work, out = Path(args.model), Path(args.data), Path(args.workdir), Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    rows = results.setdefault("rows", {})
    validation = world_variant(data, work / "validation-world", seed=args.validation_seed, n_train=1)
    results["validation_world_seed"] = args.validation_seed
    if "base" not in rows:
        rows["base"] = {"pope": pope_scores(model, None, validation, work / "eval-base", args.batch_size)}
        write_json(out, results)
    purify_base = load_stage_config("purify")
    distill_base = load_stage_config("distill")
    for row in GRIDS[args.grid]:
        name = row_name(row)
        if name in rows:
            continue
        pool, questions, step, alpha, adaptive, epochs, samples, *_ = row
        centre, centre_weight = centre_of(row)
        start = time.perf_counter()
        split = world_variant(
            data, work / f"world-{pool}-{questions}", seed_question_pool=pool, seed_questions=questions
        )
        contrast_dir = ""
        if contrast_of(row) == "oracle":
            from seed.world.redraw import render_oracle_seed_images

            oracle = work / f"oracle-{pool}-{questions}"
            shutil.rmtree(oracle, ignore_errors=True)  # drawn again: never a stale or partial folder
            render_oracle_seed_images(split, oracle)
            contrast_dir = str(oracle)
        purify = dataclasses.replace(
            purify_base,
            contrast_dir=contrast_dir,
            noise_step=step,
            cd_alpha=alpha,
            adaptive=adaptive,
            max_samples=samples,
            centre=centre,
            centre_weight=centre_weight,
            noise_draws=draws_of(row),
        )
        distill = dataclasses.replace(distill_base, epochs=epochs, balance=balance_of(row))
        slug = name.replace("/", "_")
        adapter = train_adapter(model, split, work / slug, purify, distill, progress=False)
        rows[name] = {
            "pope": pope_scores(model, adapter, validation, work / f"eval-{slug}", args.batch_size),
            "seconds": round(time.perf_counter() - start, 1),
        }
        write_json(out, results)
        cf = rows[name]["pope"].get("counterfactual", {})
        print(f"{name}: CF F1 {cf.get('f1', 0):.3f} AUC {cf.get('auc') or 0:.3f} ({rows[name]['seconds']} s)")
    print(table(results))
    return 0


def table(results: dict) -> str:
    """Markdown: one line per row, the validation world's CF and adversarial and random numbers."""
    lines = [
        "| row (pool-q/step/alpha/strength/epochs/samples) | CF F1 | CF AUC | CF yes | adv F1 | adv AUC | rand F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.get("rows", {}).items():
        pope = row["pope"]
        cf, adv, rnd = (pope.get(s, {}) for s in ("counterfactual", "adversarial", "random"))
        cells = [
            cf.get("f1"),
            cf.get("auc"),
            cf.get("yes_ratio"),
            adv.get("f1"),
            adv.get("auc"),
            rnd.get("f1"),
        ]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
