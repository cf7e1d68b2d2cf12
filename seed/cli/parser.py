"""The argument parser of the `seed` command: one subparser per subcommand, flags from the config
dataclasses."""

from __future__ import annotations

import argparse
import dataclasses

from seed.cli.commands import (
    _cmd_controls,
    _cmd_distill,
    _cmd_eval,
    _cmd_evolve,
    _cmd_oracle,
    _cmd_pretrain,
    _cmd_probe,
    _cmd_purify,
    _cmd_synth,
)

EPILOG = """\
the default pipeline (what `make demo` runs):
  seed data synth --out data --seed 0      build the embedded world
  seed validate data                       check it with great-expectations
  seed pretrain --data data --out artifacts/base-model
  seed evaluate --model artifacts/base-model --data data --out reports
  seed controls                            the six control rows -> reports/controls.json
  seed probe                               probe the base model -> reports/base_probe.json

see README.md for real data and real checkpoints."""


def _add_dataclass_flags(
    parser: argparse.ArgumentParser, cls, section: str, skip: tuple[str, ...] = ()
) -> None:
    """One optional flag per scalar or list field of a config dataclass (``--n-train``).

    A flag left out keeps the params.yaml value (or the dataclass default). Lists are comma-separated.
    """
    kinds = {
        "int": int,
        "float": float,
        "str": str,
        "str | None": str,
        "bool": lambda s: s.lower() in ("1", "true", "yes"),
        "list[str]": lambda s: [x.strip() for x in s.split(",") if x.strip()],
        "list[int]": lambda s: [int(x) for x in s.split(",") if x.strip()],
    }
    for f in dataclasses.fields(cls):
        if f.name in skip or f.type not in kinds:
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = ",".join(map(str, f.default_factory()))  # type: ignore[misc]
        else:
            default = "required"
        metavar = "A,B,..." if f.type.startswith("list") else f.type.split(" ")[0].upper()
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=kinds[f.type],
            default=None,
            metavar=metavar,
            help=f"{section}.{f.name} (default: params.yaml's value, else {default})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seed",
        description="SEED: remove hallucinations from vision-language models by self-evolving distillation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="build datasets (the embedded world)")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    synth = data_sub.add_parser(
        "synth",
        help="generate the procedural image world in the real benchmark formats",
        description="Generate a deterministic world: PNG scenes, COCO-style annotations, LLaVA conversations, "
        "official-format POPE/MME files and a CHAIR image list. Options default to params.yaml's "
        "`world` section.",
    )
    synth.add_argument("--out", required=True, help="output folder (replaced if it holds a previous world)")
    from seed.world.config import WorldConfig

    _add_dataclass_flags(synth, WorldConfig, "world")
    synth.set_defaults(func=_cmd_synth)
    oracle = data_sub.add_parser(
        "oracle",
        help="redraw each SEED image of a world without its objects (the oracle contrast image)",
        description="Re-sample each SEED image's scene from its own random stream and draw only its "
        "background: the scene prior alone, the contrast image of the positive control seed_oracle "
        "(`seed controls`, purify.contrast_dir).",
    )
    oracle.add_argument("--data", default="data", help="world folder (default: data)")
    oracle.add_argument("--out", required=True, help="folder for the images (same file names as images/seed)")
    oracle.set_defaults(func=_cmd_oracle)

    sub.add_parser(
        "validate",
        help="validate a world folder, POPE files or an MME folder (great-expectations)",
        add_help=False,
    )
    sub.add_parser(
        "run",
        help="run the whole pipeline as the Prefect flow seed-pipeline (DVC stages, MLflow, registry)",
        add_help=False,
    )
    sub.add_parser("serve", help="serve seed-pipeline as a scheduled deployment (--cron)", add_help=False)
    sub.add_parser(
        "answer", help="answer a question about an image with a registered or local model", add_help=False
    )
    sub.add_parser(
        "pope-score", help="score POPE answers against questions with the official parsing", add_help=False
    )

    pre = sub.add_parser(
        "pretrain",
        help="train the embedded base model on a world's supervised split",
        description="Train the small LLaVA-architecture base model (CLIP-style vision tower, "
        "projector, Llama-style decoder) with a locally built tokenizer and processor; "
        "saves it with save_pretrained (safetensors).",
    )
    pre.add_argument("--data", required=True, help="world folder")
    pre.add_argument("--out", required=True, help="model folder to write")
    from seed.stages.pretrain import PretrainConfig

    _add_dataclass_flags(pre, PretrainConfig, "pretrain")
    pre.set_defaults(func=_cmd_pretrain)

    ev = sub.add_parser(
        "evaluate",
        aliases=["eval"],
        help="evaluate a model on POPE, MME-hallucination and CHAIR (alias: eval)",
        description="Answer every benchmark with the model (optionally with a PEFT adapter merged) "
        "and write answers files, reports/metrics.json and plots.",
    )
    ev.add_argument("--model", required=True, help="model folder or hub id (AutoModelForImageTextToText)")
    ev.add_argument("--adapter", default=None, help="PEFT adapter folder to merge before evaluating")
    ev.add_argument("--data", default="data", help="world folder (default: data)")
    ev.add_argument("--images", dest="images_dir", default=None, help="alias of --images-dir (COCO val2014)")
    ev.add_argument("--instances", dest="instances_file", default=None, help="alias of --instances-file")
    ev.add_argument("--out", default="reports", help="reports folder (default: reports)")
    from seed.stages.evaluate import EvaluateConfig

    _add_dataclass_flags(ev, EvaluateConfig, "evaluate")
    ev.set_defaults(func=_cmd_eval)

    pur = sub.add_parser(
        "purify",
        help="self-generate responses on the unlabelled split and write purified sparse targets",
        description="Identify (confidence), isolate (noised image), purify (contrast on the plausible set): the "
        "model answers the unlabelled instructions greedily, then clean and noised passes of each batch run as "
        "one forward of 2B and the purified next-token targets are stored sparsely (top-k) in safetensors "
        "shards with a manifest of hashes and parameters. No answer or label is ever read.",
    )
    pur.add_argument("--model", required=True, help="the current model (teacher and generator)")
    pur.add_argument("--data", required=True, help="world / dataset folder with seed/instructions.json")
    pur.add_argument("--out", required=True, help="targets folder (completed shards are reused on rerun)")
    from seed.stages.purify import PurifyConfig

    _add_dataclass_flags(pur, PurifyConfig, "purify")
    pur.set_defaults(func=_cmd_purify)

    dis = sub.add_parser(
        "distill",
        help="distil purified targets into a LoRA adapter (mode-seeking reverse KL)",
        description="Train a fresh LoRA adapter on the language model so that the student matches the purified "
        "targets (reverse KL on the target's support, forward KL as the ablation); saves it in PEFT format.",
    )
    dis.add_argument("--model", required=True, help="the base model the targets were built with")
    dis.add_argument("--data", required=True, help="world / dataset folder (images of the unlabelled split)")
    dis.add_argument("--targets", required=True, help="targets folder written by `seed purify`")
    dis.add_argument("--out", required=True, help="adapter folder to write")
    dis.add_argument(
        "--merged", default=None, help="also write the merged model here (for serving / next round)"
    )
    from seed.stages.distill import DistillConfig

    _add_dataclass_flags(dis, DistillConfig, "distill")
    dis.set_defaults(func=_cmd_distill)

    evo = sub.add_parser(
        "evolve",
        help="self-evolving rounds: purify -> distill -> merge, round r taught by round r-1's model",
    )
    evo.add_argument("--model", required=True, help="the starting model")
    evo.add_argument("--data", required=True, help="world / dataset folder")
    evo.add_argument("--workdir", required=True, help="folder for round-<r>/{targets,adapter,model}")
    evo.add_argument("--rounds", type=int, default=2, help="number of rounds (default 2)")
    evo.add_argument("--no-eval", action="store_true", help="skip the per-round evaluation")
    evo.set_defaults(func=_cmd_evolve)

    ctl = sub.add_parser(
        "controls",
        help="evaluate the six control rows (base, vcd, seed, seed_no_contrast, bias, seed_oracle)",
        description="Train the control adapters (SEED without contrast: cd_alpha 0; SEED with the oracle "
        "contrast: the scene drawn without its objects), tune a constant yes/no logit bias on a validation "
        "world (another world seed), and evaluate all six rows with the evaluate settings into one file in "
        "the schema of reports/metrics.json. About 10 minutes on 2 CPU cores for the default world.",
    )
    ctl.add_argument(
        "--model", default="artifacts/base-model", help="base model (default: artifacts/base-model)"
    )
    ctl.add_argument("--data", default="data", help="world folder (default: data)")
    ctl.add_argument(
        "--adapter",
        default="artifacts/adapter",
        help="the pipeline's SEED adapter for the seed row (default: artifacts/adapter; trained here if absent)",
    )
    ctl.add_argument(
        "--workdir", default="artifacts/controls", help="work folder (default: artifacts/controls)"
    )
    ctl.add_argument(
        "--out", default="reports/controls.json", help="results (default: reports/controls.json)"
    )
    ctl.add_argument(
        "--validation-seed", type=int, default=1, help="world seed of the bias tuning world (default 1)"
    )
    ctl.add_argument(
        "--validation-pope-images", type=int, default=100, help="POPE images of that world (default 100)"
    )
    ctl.set_defaults(func=_cmd_controls)

    probe = sub.add_parser(
        "probe",
        help="probe a base model: object evidence in its image tokens, its yes/no margins, the noised view",
        description="Train linear probes on the projected image tokens of a decorrelated world (objects "
        "independent of the scene), score them on the world's POPE adversarial and counterfactual splits, "
        "clean and noised, and read the language model's first-token yes-minus-no margins (clean, noised, "
        "clean minus noised) on the counterfactual split. Writes one JSON report (docs/method.md).",
    )
    probe.add_argument(
        "--model", default="artifacts/base-model", help="model folder (default: artifacts/base-model)"
    )
    probe.add_argument("--data", default="data", help="world folder (default: data)")
    probe.add_argument(
        "--out", default="reports/base_probe.json", help="report file (default: reports/base_probe.json)"
    )
    probe.add_argument(
        "--noise-step", type=int, default=None, help="noise step T (default: purify.noise_step)"
    )
    probe.add_argument(
        "--probe-images", type=int, default=3000, help="training images of the probe world (default 3000)"
    )
    probe.add_argument("--seed", type=int, default=None, help="noise and probe seed (default: purify.seed)")
    probe.set_defaults(func=_cmd_probe)
    return parser
