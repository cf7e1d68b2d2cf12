"""Run a function in child processes: as the ranks of a gloo process group, or alone to be killed.

The children come from a fork server (`multiprocessing` "forkserver") that imported torch,
transformers, peft and seed once: each child starts in milliseconds instead of the ~10 s of a fresh
interpreter, and, unlike a plain fork of the test process, it inherits no autograd threads or CUDA
state (a forked child of a process that ran a backward pass on a CUDA build cannot run one).
``fn`` must pickle: a module-level function, or `functools.partial` of one. A child writes its
return value (JSON) or its traceback next to the results; `join` / `run_ranks` / `kill_when` raise
with the child's traceback when it failed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

_METHOD = "forkserver"
_CONTEXT = (
    multiprocessing.get_context(_METHOD) if _METHOD in multiprocessing.get_all_start_methods() else None
)
if _CONTEXT is not None:
    _CONTEXT.set_forkserver_preload(
        ["torch", "transformers", "peft", "accelerate", "seed.stages.distill", "seed.stages.purify"]
    )
_RANK_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def gloo_available() -> bool:
    import torch.distributed as dist

    return _CONTEXT is not None and dist.is_available() and dist.is_gloo_available()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _child(fn: Callable[[], Any], out: Path, env: dict[str, str], nice: int) -> None:
    for key in _RANK_VARS:
        os.environ.pop(key, None)
    os.environ.update(env)
    if nice:
        os.nice(nice)  # the parent, polling for a file to appear, gets the CPU first
    try:
        import torch

        torch.set_num_threads(1)  # as in the test process (conftest): the same kernels, the same bits
        result = fn()
        out.write_text(json.dumps(result, default=str))
    except BaseException:
        out.with_suffix(".error").write_text(traceback.format_exc())
        os._exit(1)


def start(fn: Callable[[], Any], out: Path, env: dict[str, str] | None = None, nice: int = 0):
    """Start one child running ``fn()``; its result lands in ``out`` (JSON). Returns the Process."""
    process = _CONTEXT.Process(target=_child, args=(fn, Path(out), dict(env or {}), nice), daemon=True)
    process.start()
    return process


def kill_when(process, out: Path, ready: Callable[[], bool], timeout: float = 120) -> None:
    """SIGKILL the child of `start` as soon as ``ready()``; AssertionError if it ended first (with why)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.exitcode is not None or time.monotonic() > deadline:
            process.join(1)
            error = Path(out).with_suffix(".error")
            why = error.read_text() if error.exists() else f"exit code {process.exitcode}"
            raise AssertionError(f"the child ended (or timed out) before it could be killed: {why}")
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL, process.exitcode


def join(process, out: Path, timeout: float = 120) -> Any:
    """Wait for a child of `start`; its result, or AssertionError with its traceback."""
    process.join(timeout)
    if process.is_alive():
        process.kill()
        raise AssertionError(f"child {process.pid} did not finish within {timeout} s")
    error = Path(out).with_suffix(".error")
    assert process.exitcode == 0, error.read_text() if error.exists() else f"exit code {process.exitcode}"
    return json.loads(Path(out).read_text())


def run_ranks(fn: Callable[[], Any], world_size: int, folder: Path, timeout: float = 300) -> list[Any]:
    """``fn()`` in ``world_size`` forked processes that form one gloo group; their results, by rank."""
    port = str(_free_port())
    processes = []
    for rank in range(world_size):
        env = {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
        }
        out = Path(folder) / f"rank-{rank}.json"
        processes.append((start(fn, out, env), out))
    deadline = time.monotonic() + timeout
    while any(p.is_alive() for p, _ in processes) and time.monotonic() < deadline:
        if any(p.exitcode not in (None, 0) for p, _ in processes):
            break  # one rank failed: the others would wait for it at the next barrier
        time.sleep(0.05)
    errors = []
    for rank, (process, out) in enumerate(processes):
        if process.is_alive():
            process.kill()
        process.join(5)
        error = out.with_suffix(".error")
        if process.exitcode != 0:
            errors.append(
                f"rank {rank}: " + (error.read_text() if error.exists() else f"exit {process.exitcode}")
            )
    assert not errors, "\n".join(errors)
    return [json.loads(out.read_text()) for _, out in processes]
