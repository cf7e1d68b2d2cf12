"""Screenshots of what a user sees in the MLflow UI after `make demo`: the run and the registered model.

    python docs/screenshots.py [--workdir .] [--out docs/img]

Starts ``mlflow ui`` on the workdir's ``mlflow.db`` at a free localhost port, opens in headless
Chromium the newest finished run of the experiment ``seed`` (its overview and its model metrics)
(the loss curves) and the registered model ``seed-lvlm`` (its versions and aliases), and writes
``mlflow-run.png``, ``mlflow-run-metrics.png`` and ``mlflow-model.png`` into ``--out``.

Needs Playwright's Python client (``pip install playwright``) and a Chromium on the machine
(Debian: ``apt-get install chromium``; another binary: ``--chromium PATH``). Playwright's own
browser download is not used.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

EXPERIMENT = "seed"
MODEL = "seed-lvlm"
VIEWPORT = {"width": 1440, "height": 900}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(db: Path, port: int) -> subprocess.Popen:
    """``mlflow ui`` on ``db``; returns once it answers (or raises with its output)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(mlflow),
        "ui",
        "--backend-store-uri",
        f"sqlite:///{db}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"mlflow ui exited: {proc.stdout.read() if proc.stdout else ''}") from None
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"mlflow ui did not answer on port {port} within 90 s")


def newest_run(db: Path) -> tuple[str, str, str]:
    """``(experiment id, run id, run name)`` of the newest finished top-level run of experiment seed."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise SystemExit(f"{db}: no experiment {EXPERIMENT!r}; run `make demo` first")
    runs = client.search_runs(
        [experiment.experiment_id],
        "attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    if not top:
        raise SystemExit(f"{db}: experiment {EXPERIMENT!r} has no finished run")
    return experiment.experiment_id, top[0].info.run_id, top[0].info.run_name


def shoot(base: str, pages: dict[str, tuple[str, str, str]], out: Path, chromium: str) -> list[Path]:
    """Open each ``name: (url fragment, text to wait for, chart filter or "")``; save ``out/<name>.png``."""
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
        for name, (fragment, text, charts) in pages.items():
            # the UI opens on its GenAI views unless told otherwise; the query selects model training
            page.goto(f"{base}/#{fragment}?workflowType=machine_learning")
            page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
            close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
            if close.count() and close.first.is_visible():  # the chat panel opens itself on first load
                close.first.click()
            if charts:
                page.get_by_placeholder("Search metric charts").fill(charts)
            time.sleep(4)  # the UI keeps polling, so there is no idle network to wait for; charts draw late
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            written.append(path)
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", default=".", help="folder holding mlflow.db (default: .)")
    parser.add_argument("--out", default="docs/img", help="where the PNGs go (default: docs/img)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    db = (Path(args.workdir) / "mlflow.db").resolve()
    if not db.is_file():
        raise SystemExit(f"{db}: no MLflow store; run `make demo` first")
    if not Path(args.chromium).is_file():
        raise SystemExit(
            f"no Chromium at {args.chromium}; install it (apt-get install chromium) or pass --chromium"
        )
    experiment_id, run_id, run_name = newest_run(db)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ui = start_ui(db, port)
    try:
        run = f"/experiments/{experiment_id}/runs/{run_id}"
        pages = {
            "mlflow-run": (run, run_name, ""),
            "mlflow-run-metrics": (f"{run}/model-metrics", run_name, "loss"),
            "mlflow-model": (f"/models/{MODEL}", MODEL, ""),
        }
        for path in shoot(f"http://127.0.0.1:{port}", pages, out, args.chromium):
            print(f"wrote {path}")
    finally:
        ui.terminate()
        ui.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
