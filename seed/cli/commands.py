"""The handlers of the `seed` subcommands that run in this package: each reads its params.yaml
section, applies the flags and calls the stage or tool."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def _params(args: argparse.Namespace) -> str:
    """``--params``, said out loud when that file is missing: every setting is then its built-in
    default, which for `seed data synth` is a different world from a project's (no hard negatives,
    a typical-object SEED split), an easy mistake when a command runs outside the project folder.
    Call it once per command."""
    path = args.params
    if not Path(path).exists():
        print(
            f"note: no params file {path} (in {Path.cwd()}): every setting not given as a flag is its "
            "built-in default; pass --params FILE before the command to read a project's",
            file=sys.stderr,
        )
    return path


def _overrides(args: argparse.Namespace, cls) -> dict:
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }


def _cmd_synth(args: argparse.Namespace) -> int:
    from seed.params import load_config
    from seed.world.config import WorldConfig
    from seed.world.synth import synthesize

    config = load_config(WorldConfig, "world", _params(args), **_overrides(args, WorldConfig))
    start = time.perf_counter()
    summary = synthesize(Path(args.out), config, progress=not args.quiet)
    print(
        json.dumps(
            {"out": str(args.out), "seconds": round(time.perf_counter() - start, 1), **summary}, indent=2
        )
    )
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from seed.params import load_config
    from seed.stages.pretrain import PretrainConfig, pretrain

    config = load_config(PretrainConfig, "pretrain", _params(args), **_overrides(args, PretrainConfig))
    summary = pretrain(args.data, args.out, config, progress=not args.quiet)
    summary.pop("config")
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_purify(args: argparse.Namespace) -> int:
    from seed.params import load_config
    from seed.stages.purify import PurifyConfig, build_targets

    config = load_config(PurifyConfig, "purify", _params(args), **_overrides(args, PurifyConfig))
    summary = build_targets(
        Path(args.model), Path(args.data), Path(args.out), config, progress=not args.quiet
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2, default=str))
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from seed.params import load_config
    from seed.stages.distill import DistillConfig, distill, merge_and_save

    config = load_config(DistillConfig, "distill", _params(args), **_overrides(args, DistillConfig))
    summary = distill(
        Path(args.model), Path(args.data), Path(args.targets), Path(args.out), config, progress=not args.quiet
    )
    if args.merged:
        merge_and_save(Path(args.model), Path(args.out), Path(args.merged))
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k not in ("config", "targets_meta")}, indent=2, default=str
        )
    )
    return 0


def _cmd_evolve(args: argparse.Namespace) -> int:
    from seed.params import load_config
    from seed.stages.distill import DistillConfig
    from seed.stages.evolve import evolve
    from seed.stages.purify import PurifyConfig

    params = _params(args)
    purify_config = load_config(PurifyConfig, "purify", params)
    distill_config = load_config(DistillConfig, "distill", params)
    evaluate = None
    if not args.no_eval:
        from seed.eval.runner import evaluate_model
        from seed.model.generate import load_model
        from seed.stages.evaluate import EvaluateConfig

        eval_config = load_config(EvaluateConfig, "evaluate", params)

        def evaluate(model_dir: Path) -> dict:
            model, processor = load_model(model_dir)
            return evaluate_model(
                model,
                processor,
                Path(args.data),
                Path(model_dir) / "answers",
                eval_config,
                progress=not args.quiet,
            )

    rounds = evolve(
        Path(args.model),
        Path(args.data),
        Path(args.workdir),
        purify_config,
        distill_config,
        rounds=args.rounds,
        evaluate=evaluate,
        progress=not args.quiet,
    )
    print(json.dumps(rounds, indent=2, default=str))
    return 0


def _cmd_oracle(args: argparse.Namespace) -> int:
    from seed.world.redraw import render_oracle_seed_images

    names = render_oracle_seed_images(Path(args.data), Path(args.out))
    print(json.dumps({"out": str(args.out), "images": len(names)}))
    return 0


def _cmd_controls(args: argparse.Namespace) -> int:
    from seed.controls import run_controls
    from seed.stages import load_stage_config

    adapter = Path(args.adapter) if args.adapter else None
    if adapter is not None and not adapter.is_dir():
        adapter = None
        print(f"note: no adapter at {args.adapter}; the seed row is trained here")
    params = _params(args)
    metrics = run_controls(
        Path(args.model),
        Path(args.data),
        Path(args.workdir),
        Path(args.out),
        load_stage_config("purify", params),
        load_stage_config("distill", params),
        load_stage_config("evaluate", params),
        adapter_dir=adapter,
        validation_seed=args.validation_seed,
        validation_pope_images=args.validation_pope_images,
        progress=not args.quiet,
    )
    from seed.eval.report import results_table

    print(results_table(metrics))
    print(
        f"yes/no bias of the bias control (tuned on world seed {args.validation_seed}): "
        f"{metrics['controls']['bias']['yes_bias']:+.2f}; written {args.out}"
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from seed.params import load_config
    from seed.stages.evaluate import EvaluateConfig, evaluate_stage

    config = load_config(EvaluateConfig, "evaluate", _params(args), **_overrides(args, EvaluateConfig))
    metrics = evaluate_stage(
        Path(args.model),
        Path(args.data),
        Path(args.out),
        config,
        adapter_dir=Path(args.adapter) if args.adapter else None,
        progress=not args.quiet,
    )
    from seed.eval.report import results_table

    print(results_table(metrics))
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from seed.eval.probe import run_probe
    from seed.params import load_config
    from seed.stages.purify import PurifyConfig

    purify = load_config(PurifyConfig, "purify", _params(args), noise_step=args.noise_step, seed=args.seed)
    report = run_probe(
        Path(args.model),
        Path(args.data),
        Path(args.out),
        noise_step=purify.noise_step,
        probe_images=args.probe_images,
        seed=purify.seed,
        progress=not args.quiet,
    )
    print(json.dumps({k: v for k, v in report.items() if k != "settings"}, indent=2))
    return 0
