"""Where one run of the seed-pipeline flow reads and writes (`Workspace`), and the configs it runs with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seed.errors import ConfigError, DataError
from seed.stages import ADAPTER, BASE_MODEL, REPORTS, ROUNDS, SEED_MODEL, STAGES, TARGETS


@dataclass(frozen=True)
class Workspace:
    """Where one pipeline run reads and writes; ``dvc``: stages go through the DVC project at ``root``."""

    root: Path
    data: Path
    dvc: bool
    base_model: str | None = None  # a checkpoint (path or hub id) to start from instead of pretraining

    @property
    def model(self) -> str | Path:
        return self.base_model or self.root / BASE_MODEL

    @property
    def targets(self) -> Path:
        return self.root / TARGETS

    @property
    def adapter(self) -> Path:
        return self.root / ADAPTER

    @property
    def seed_model(self) -> Path:
        return self.root / SEED_MODEL

    @property
    def rounds(self) -> Path:
        return self.root / ROUNDS

    @property
    def reports(self) -> Path:
        return self.root / REPORTS


def is_dvc_project(root: Path) -> bool:
    return (root / "dvc.yaml").is_file() and (root / ".dvc").is_dir()


def make_workspace(data_dir: str | Path, workdir: str | Path, base_model: str | None = None) -> Workspace:
    """Resolve the paths of a run; in a DVC project only its own data and pretrain stage are allowed."""
    root, data = Path(workdir).resolve(), Path(data_dir).resolve()
    if not data.is_dir():
        raise DataError(data, "no such data folder")
    dvc = is_dvc_project(root)
    if dvc and data != root / "data":
        raise ConfigError(
            f"{root} is a DVC project whose pipeline reads {root / 'data'}; to run on {data}, "
            "pass --workdir with another folder (the flow then runs without DVC)"
        )
    if dvc and base_model:
        raise ConfigError(
            f"{root} is a DVC project whose base model comes from stage pretrain; to start from "
            f"{base_model}, pass --workdir with another folder"
        )
    return Workspace(root, data, dvc, base_model)


def load_configs(ws: Workspace, params_path: str | Path, overrides: dict | None = None) -> dict[str, Any]:
    """The config of every section the run uses: params.yaml sections, with ``overrides`` (not in DVC)."""
    from seed.mlops.gate import PromoteConfig
    from seed.params import load_config
    from seed.stages import load_stage_config

    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {*STAGES, "promote"})
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(unknown)}; sections: {', '.join([*STAGES, 'promote'])}"
        )
    path = Path(params_path)
    if ws.dvc and (overrides or path.resolve() != ws.root / "params.yaml"):
        raise ConfigError(
            "in the DVC project the stages read params.yaml only (dvc.lock records it): edit it, "
            "or pass --workdir with another folder to run other settings"
        )
    used = [s for s in STAGES if not (s == "pretrain" and ws.base_model)]
    configs: dict[str, Any] = {s: load_stage_config(s, path, **overrides.get(s, {})) for s in used}
    configs["promote"] = load_config(PromoteConfig, "promote", path, **overrides.get("promote", {}))
    return configs


def workspace_rounds(ws: Workspace) -> list[dict[str, Any]]:
    """The workspace's rounds list (`seed.files.rounds`), its paths made absolute.

    DVC stages run in the project folder and write paths relative to it; they are resolved against
    ``ws.root``, so that the flow reads the same folders from any working directory. A generator that
    is a hub id (no such folder under the root) stays as written; ``[]`` when no `evolve` has run.
    """
    from seed.files.rounds import read_rounds

    def resolve(value: str, hub_id_possible: bool = False) -> str:
        if not value or Path(value).is_absolute():  # "": no targets (online distillation)
            return value
        if hub_id_possible and not (ws.root / value).exists():
            return value
        return str(ws.root / value)

    return [
        {
            **entry,
            "generator": resolve(entry["generator"], hub_id_possible=True),
            **{k: resolve(entry[k]) for k in ("targets", "adapter", "model")},
        }
        for entry in read_rounds(ws.rounds)
    ]
