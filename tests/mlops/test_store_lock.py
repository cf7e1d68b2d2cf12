from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from seed.errors import SeedError
from seed.mlops import store_lock as lock_module
from seed.mlops.store_lock import lock_path, store_lock


def _uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def _try_flock(path: Path) -> bool:
    """Whether another open file (as another process would have) can take the lock now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_lock_path_is_beside_a_sqlite_store_only(tmp_path, monkeypatch):
    assert lock_path(_uri(tmp_path)) == tmp_path / "mlflow.db.lock"
    monkeypatch.chdir(tmp_path)
    assert lock_path("sqlite:///mlflow.db") == tmp_path / "mlflow.db.lock"
    assert lock_path(f"sqlite:///{tmp_path}/x.db?timeout=5") == tmp_path / "x.db.lock"
    for uri in ("http://localhost:5000", "postgresql://u@h/db", "sqlite:///:memory:", "databricks"):
        assert lock_path(uri) is None
    with store_lock("http://localhost:5000") as held:
        assert held is None


def test_the_lock_excludes_other_holders_and_names_its_own(tmp_path):
    uri = _uri(tmp_path)
    with store_lock(uri) as path:
        assert path == tmp_path / "mlflow.db.lock"
        assert not _try_flock(path)
        assert path.read_text().startswith(f"pid {os.getpid()} on ")
        with store_lock(uri, timeout=0.5) as again:  # re-entrant in one thread
            assert again == path and not _try_flock(path)
        assert not _try_flock(path)  # still held by the outer block
    assert _try_flock(path)


def test_a_second_thread_waits_for_the_lock(tmp_path):
    uri = _uri(tmp_path)
    errors: list[Exception] = []

    def contender() -> None:
        try:
            with store_lock(uri, timeout=0.2):
                pass
        except SeedError as exc:
            errors.append(exc)

    with store_lock(uri):
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "another thread" in str(errors[0])
    thread = threading.Thread(target=contender)  # free again
    thread.start()
    thread.join()
    assert len(errors) == 1


def test_a_lock_held_elsewhere_times_out_with_its_holder_named(tmp_path):
    path = tmp_path / "mlflow.db.lock"
    path.write_text("pid 4242 on elsewhere\n")
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        expected = r"locked by another run \(pid 4242 on elsewhere\) for more than 0.2 s"
        with pytest.raises(SeedError, match=expected), store_lock(_uri(tmp_path), timeout=0.2):
            pass
    finally:
        os.close(fd)
    with store_lock(_uri(tmp_path), timeout=0.2) as held:
        assert held == path


def test_a_killed_holder_releases_the_lock(tmp_path):
    uri = _uri(tmp_path)
    code = (
        "import sys, time\n"
        "from seed.mlops.store_lock import store_lock\n"
        "block = store_lock(sys.argv[1])\n"
        "block.__enter__()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not _try_flock(tmp_path / "mlflow.db.lock")
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with store_lock(uri, timeout=2) as held:
        assert held is not None


def test_a_fresh_store_is_created_under_the_lock(tmp_path, monkeypatch):
    """Two processes migrating one new mlflow.db at once corrupt it: configure waits for the lock first."""
    from seed.mlops.tracking import configure

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset-at-teardown")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setattr(lock_module, "TIMEOUT_S", 0.2)
    fd = os.open(tmp_path / "mlflow.db.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(SeedError, match="locked by another run"):
            configure(tmp_path)
    finally:
        os.close(fd)
    assert not (tmp_path / "mlflow.db").exists()
