"""One writer at a time on a local MLflow store: an exclusive lock file beside the SQLite database.

Two pipeline runs in one workdir share ``mlflow.db``. SQLite serialises single statements, not the
steps that must go together:

- creating a fresh store: two processes migrating one new file at once leave it half-migrated and
  unreadable for good (``table _alembic_tmp_tags already exists``);
- the registry's read-decide-write: find a version by adapter hash, register, read the champion's
  scores, move the alias. Interleaved, two runs register one adapter twice, or both compare with the
  same old champion and the last writer wins.

`store_lock` holds ``<db>.lock`` (``mlflow.db.lock``) with ``fcntl.flock`` around each of those. The
kernel drops the lock when its holder exits or dies, so a crashed run never leaves it stuck; never
delete the file by hand while a run may hold it (a new file is a new, unrelated lock). The lock is
re-entrant within one process and serialises threads too. Stores without a local file (a tracking
server, PostgreSQL, ...) get no lock: the server serialises writes, and promotion should then run
from one scheduler. Platforms without ``fcntl`` (Windows) get no lock either.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seed.errors import SeedError

SUFFIX = ".lock"
TIMEOUT_S = 600.0  # a registration takes about a second; a fresh store about two
POLL_S = 0.05

_THREADS: dict[Path, threading.RLock] = {}
_DEPTH: dict[Path, int] = {}
_GUARD = threading.Lock()


def lock_path(uri: str) -> Path | None:
    """``<db>.lock`` for a ``sqlite:///<db>`` URI (relative paths against the working directory); else None."""
    if not uri.startswith("sqlite:///"):
        return None
    db = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if db in ("", ":memory:"):
        return None
    db_path = Path(db).resolve()
    return db_path.with_name(db_path.name + SUFFIX)


def _thread_lock(path: Path) -> threading.RLock:
    with _GUARD:
        return _THREADS.setdefault(path, threading.RLock())


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"


def _flock(path: Path, timeout: float) -> int:
    """Open ``path`` and take an exclusive flock on it within ``timeout`` seconds; returns the fd."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise SeedError(
                    f"{path}: the MLflow store is locked by another run ({_holder(path)}) for more than "
                    f"{timeout:g} s; wait for it to finish or stop that process (the lock goes with it)"
                ) from None
            time.sleep(POLL_S)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


@contextmanager
def store_lock(uri: str, timeout: float | None = None) -> Iterator[Path | None]:
    """Hold the store's lock file for the block; yields its path (None: this store has no local lock).

    Raises SeedError naming the holder (``pid N on HOST``) when another process keeps it past
    ``timeout`` seconds (default `TIMEOUT_S`).
    """
    timeout = TIMEOUT_S if timeout is None else timeout
    path = lock_path(uri)
    try:
        import fcntl  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        yield None
        return
    in_process = _thread_lock(path)
    if not in_process.acquire(timeout=timeout):
        raise SeedError(f"{path}: another thread of this process holds the MLflow store for {timeout:g} s")
    try:
        depth = _DEPTH.get(path, 0)
        fd = _flock(path, timeout) if depth == 0 else None
        _DEPTH[path] = depth + 1
        try:
            yield path
        finally:
            _DEPTH[path] -= 1
            if fd is not None:
                os.close(fd)  # closing the only descriptor releases the flock
    finally:
        in_process.release()
