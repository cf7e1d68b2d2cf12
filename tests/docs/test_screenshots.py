"""docs/screenshots.py: which run it shows, its errors, and (where Chromium and Playwright are
installed) the screenshots themselves."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from seed.mlops.tracking import configure

SCRIPT = Path(__file__).parents[2] / "docs" / "screenshots.py"


@pytest.fixture(scope="module")
def screenshots():
    spec = importlib.util.spec_from_file_location("screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def store(mlflow_template, tmp_path, monkeypatch) -> Path:
    """A store with a finished parent run (and its nested run), a failed newer run, the registered model."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    experiment_id = configure(tmp_path)
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name="seed r2 abc1234") as parent,
        mlflow.start_run(experiment_id=experiment_id, run_name="seed r2 abc1234 round 2", nested=True),
    ):
        pass
    mlflow.MlflowClient().create_registered_model("seed-lvlm")
    with mlflow.start_run(experiment_id=experiment_id, run_name="failed"):
        mlflow.end_run(status="FAILED")
    return tmp_path, experiment_id, parent.info.run_id


def test_the_newest_finished_top_level_run_is_shown(screenshots, store):
    root, experiment_id, parent_id = store
    assert screenshots.newest_run(root / "mlflow.db") == (experiment_id, parent_id, "seed r2 abc1234")


def test_missing_store_and_browser_are_named(screenshots, tmp_path):
    with pytest.raises(SystemExit, match="no MLflow store; run `make demo` first"):
        screenshots.main(["--workdir", str(tmp_path)])
    (tmp_path / "mlflow.db").write_bytes(b"")
    with pytest.raises(SystemExit, match="no Chromium at /nowhere/chromium"):
        screenshots.main(["--workdir", str(tmp_path), "--chromium", "/nowhere/chromium"])


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").is_file() or importlib.util.find_spec("playwright") is None,
    reason="needs Chromium and Playwright (make screenshots installs the client)",
)
def test_screenshots_of_the_run_and_the_model_are_written(screenshots, store, tmp_path):
    root, _, _ = store
    out = tmp_path / "img"
    screenshots.main(["--workdir", str(root), "--out", str(out), "--chromium", "/usr/bin/chromium"])
    for name in ("mlflow-run", "mlflow-run-metrics", "mlflow-model"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
