"""`seed answer`: ask a model one question about one image.

The model is either a registered version (``--model-uri models:/seed-lvlm@champion``, an MLflow pyfunc
that holds the adapter and names its base model) or a checkpoint folder / hub id with an optional
PEFT adapter merged into it (``--model PATH [--adapter PATH]``). Both answer through
`seed.model.generate.answer_batch`, greedy.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from seed.errors import DataError, SeedError
from seed.files.inputs import DEFAULT_MAX_IMAGE_SIDE, check_prompt

EPILOG = """\
examples:
  seed answer --model-uri models:/seed-lvlm@champion --image photo.png --question "Is there a dog?"
  seed answer --model artifacts/base-model --adapter artifacts/adapter --image photo.png --question "..."

--model-uri reads the registry at sqlite:///<cwd>/mlflow.db unless --tracking-uri or MLFLOW_TRACKING_URI
says otherwise."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seed answer",
        description="Answer one question about one image with a registered model or a checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-uri", help="an MLflow model URI, e.g. models:/seed-lvlm@champion")
    source.add_argument("--model", help="a checkpoint folder or hub id (AutoModelForImageTextToText)")
    parser.add_argument("--adapter", help="a PEFT adapter folder to merge into --model")
    parser.add_argument("--base-model", help="with --model-uri: where the base model lies now, if it moved")
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking/registry URI (default: sqlite:///<cwd>/mlflow.db)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="answer length cap (default: 32)")
    parser.add_argument("--image", required=True, help="image file")
    parser.add_argument("--question", required=True, help="the question")
    parser.add_argument(
        "--max-image-side",
        type=int,
        default=DEFAULT_MAX_IMAGE_SIDE,
        metavar="PX",
        help=f"largest image side in pixels that is decoded (default: {DEFAULT_MAX_IMAGE_SIDE})",
    )
    return parser


def check_request(image: Path, question: str, max_image_side: int = DEFAULT_MAX_IMAGE_SIDE):
    """The decoded image of one request, after checking the question; `DataError` names the bad one."""
    from seed.model.generate import open_image

    check_prompt(question, "--question", "question")
    return open_image(image, max_image_side)


def answer_with_checkpoint(
    model: str,
    adapter: str | None,
    image: Path,
    question: str,
    device: str = "cpu",
    max_new_tokens: int = 32,
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
) -> str:
    """One answer from a checkpoint (with the adapter merged when given)."""
    from seed.model.generate import answer_batch, load_model

    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise DataError(adapter, "not a PEFT adapter folder (no adapter_config.json)")
    picture = check_request(image, question, max_image_side)
    loaded, processor = load_model(model, adapter=adapter, device=device)
    return answer_batch(loaded, processor, [picture], [question], max_new_tokens=max_new_tokens)[0]


def answer_with_registry(
    model_uri: str,
    image: Path,
    question: str,
    tracking_uri: str | None = None,
    base_model: str | None = None,
    device: str = "cpu",
    max_new_tokens: int = 32,
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
) -> str:
    """One answer from a registered pyfunc model (``models:/seed-lvlm@champion``)."""
    from mlflow.exceptions import MlflowException

    from seed.mlops.registry import answer, load_registered
    from seed.mlops.tracking import resolve_uri, use_uri

    check_request(image, question, max_image_side)  # a bad image or question fails before the model loads
    uri = tracking_uri or resolve_uri(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    use_uri(uri)
    overrides: dict = {"device": device, "max_new_tokens": max_new_tokens}
    if base_model:
        overrides["base_model"] = base_model
    try:
        model = load_registered(model_uri, **overrides)
    except MlflowException as exc:
        raise DataError(model_uri, f"cannot load from {uri}: {exc.message}") from exc
    return answer(model, [str(image)], [question])[0]


def main_answer(argv: list[str] | None = None) -> int:
    """``seed answer``: print the model's answer to one (image, question)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser().parse_args(argv)
    if args.adapter and not args.model:
        print("error: --adapter goes with --model (a registered model carries its adapter)", file=sys.stderr)
        return 2
    if args.base_model and not args.model_uri:
        print(
            "error: --base-model goes with --model-uri (with --model, the model is the base)", file=sys.stderr
        )
        return 2
    try:
        if args.model_uri:
            text = answer_with_registry(
                args.model_uri,
                Path(args.image),
                args.question,
                args.tracking_uri,
                args.base_model,
                args.device,
                args.max_new_tokens,
                args.max_image_side,
            )
        else:
            text = answer_with_checkpoint(
                args.model,
                args.adapter,
                Path(args.image),
                args.question,
                args.device,
                args.max_new_tokens,
                args.max_image_side,
            )
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0
