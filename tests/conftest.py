"""Shared fixtures: offline, quiet, small thread count; a tiny world generated once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores shared by the test runner and anything else: one intra-op thread is several times
# faster than two under contention (OpenMP threads spin-wait on each other).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    """An empty MLflow SQLite store, built once per test session; tests copy it (a fresh store costs ~1.6 s)."""
    path = tmp_path_factory.getbasetemp() / "mlflow-template" / "mlflow.db"
    if not path.exists():
        from mlflow import MlflowClient

        path.parent.mkdir(exist_ok=True)
        MlflowClient(f"sqlite:///{path}").search_experiments()  # creates the tables
    return path
