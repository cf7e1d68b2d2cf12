"""Stage functions shared by the CLI, `dvc repro` (``python -m seed.stages <name>``) and the Prefect flow.

Each stage has one name everywhere: the DVC stage, the params.yaml section, the flow task and the
MLflow tag. A stage reads its config from its params.yaml section and writes its outputs atomically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seed.evaluate import EvaluateConfig, evaluate_model


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def run_evaluate(
    model_path: Path,
    data_dir: Path,
    out_dir: Path,
    config: EvaluateConfig,
    adapter: Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate the base model (or base + merged adapter as method ``seed``) and write metrics.json."""
    from seed.generate import load_model

    method = "seed" if adapter else "base"
    model, processor = load_model(model_path, adapter=adapter)
    answers_dir = out_dir / "answers" / method
    result = evaluate_model(model, processor, data_dir, answers_dir, config, progress=progress)
    metrics: dict = {"protocol": config.protocol}
    for bench in ("pope", "mme", "chair"):
        if bench in result:
            metrics[bench] = {method: result[bench]}
    if "colour_by_typicality" in result:
        metrics["diagnostics"] = {method: {"colour_by_typicality": result["colour_by_typicality"]}}
    metrics["seconds"] = {method: result["seconds"]}
    name = "metrics.json" if config.protocol == "greedy" else "metrics_sample.json"
    write_json(out_dir / name, metrics)
    from seed.report import write_plots

    write_plots(metrics, out_dir)
    return metrics


def run_validate(data_dir: Path, report_path: Path, max_image_side: int = 1024) -> bool:
    """Validate a world folder; write the report as JSON; True when valid."""
    from seed.validate import validate_world

    report = validate_world(data_dir, max_image_side=max_image_side)
    write_json(report_path, report.to_dict())
    print(report.format())
    return report.ok


def main(argv: list[str] | None = None) -> int:
    """``python -m seed.stages <stage>``: run one stage with the paths dvc.yaml gives it."""
    from seed.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    stage_commands = {
        "pretrain": ["pretrain", "--data", "data", "--out", "artifacts/base-model"],
        "evaluate": ["eval", "--model", "artifacts/base-model", "--data", "data", "--out", "reports"],
    }
    if argv[:1] == ["validate"]:
        from seed.params import read_params

        side = (read_params().get("validate") or {}).get("max_image_side", 1024)
        return 0 if run_validate(Path("data"), Path("reports/validation.json"), side) else 1
    if not argv or argv[0] not in stage_commands:
        print(f"usage: python -m seed.stages {{validate,{','.join(stage_commands)}}}", file=sys.stderr)
        return 2
    return cli_main(["-q", *stage_commands[argv[0]], *argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
