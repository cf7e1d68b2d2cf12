"""`make demo`: build the default world if missing, reproduce the pipeline, print the results.

Until the Prefect flow lands this drives DVC directly: ``dvc repro`` decides which stages are out
of date, so a second run with nothing changed does no work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

DATA = Path("data")


def _run(cmd: list[str]) -> float:
    print(f"$ {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def main() -> int:
    bin_dir = Path(sys.executable).parent
    times: dict[str, float] = {}
    if not (DATA / "world.json").exists():
        times["synth"] = _run([str(bin_dir / "seed"), "data", "synth", "--out", str(DATA)])
        status = subprocess.run([str(bin_dir / "dvc"), "status", "data.dvc"], capture_output=True, text=True)
        print(f"data.dvc after regeneration: {status.stdout.strip() or 'up to date'}")
    start = time.perf_counter()
    subprocess.run([str(bin_dir / "dvc"), "repro"], check=True)
    times["dvc repro"] = time.perf_counter() - start
    from seed.report import results_table

    metrics = json.loads(Path("reports/metrics.json").read_text())
    print("\nstage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    print("\n" + results_table(metrics))
    diag = metrics.get("diagnostics", {}).get("base", {}).get("colour_by_typicality")
    if diag:
        print(
            f"\ncolour questions (MME color): typical acc {diag['typical']:.3f}, atypical acc {diag['atypical']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
