"""Processes of a data-parallel run: which one am I, how many are we, wait for the others.

```
 accelerate launch --multi_gpu --num_processes N -m seed.stages purify     (GPUs: one process each)
 torchrun --standalone --nproc_per_node N -m seed.stages purify            (CPU or GPU)
        |  every process gets RANK, WORLD_SIZE, LOCAL_RANK in its environment
        v
 current_processes(device) --> Processes(rank, world_size, local_rank)  (accelerate PartialState)
```

A process started without a launcher (``WORLD_SIZE`` unset or 1) is a world of one: nothing is
initialised, no process group exists, every helper here is a no-op, and accelerate is not imported.
With ``WORLD_SIZE > 1`` the process group is set up by accelerate's `PartialState`: NCCL when the
stage runs on ``cuda``, gloo on the CPU (the stage's ``device`` decides, not the machine).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from seed.errors import SeedError


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that writes manifests, adapters and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every process reaches this point (no-op in a world of one)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        if dist.get_backend() == "gloo":
            dist.barrier()  # accelerate's barrier names a CUDA device, even for gloo on a GPU machine
        else:
            from accelerate import PartialState

            PartialState().wait_for_everyone()

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every process, in rank order, on every process (``[value]`` in a world of one).

        For small Python values (counts, floats, RNG states); tensors of a training step are reduced
        by DDP, not here.
        """
        if not self.distributed:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def device(self, device: str) -> str:
        """The device this process runs on: a bare ``cuda`` becomes ``cuda:<local_rank>`` when distributed."""
        if self.distributed and device in ("cuda", "xpu", "npu", "hpu"):
            return f"{device}:{self.local_rank}"
        return device


def launched_world_size() -> int:
    """``WORLD_SIZE`` as set by ``torchrun`` / ``accelerate launch`` (1 when unset)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError as exc:
        raise SeedError(f"WORLD_SIZE = {os.environ['WORLD_SIZE']!r} is not an integer") from exc


def current_processes(device: str = "cpu") -> Processes:
    """This process's `Processes`; initialises the process group (once) when launched with N > 1.

    ``device`` is the stage's device setting: ``cpu`` selects the gloo backend, ``cuda`` NCCL.
    """
    world_size = launched_world_size()
    if world_size == 1:
        return Processes()
    from accelerate import PartialState

    state = PartialState(cpu=not device.startswith(("cuda", "xpu", "npu", "hpu")))
    if state.num_processes != world_size:
        raise SeedError(
            f"launched with WORLD_SIZE={world_size} but accelerate set up {state.num_processes} process(es) "
            f"on {state.device}; check the launcher and the stage's device setting ({device!r})"
        )
    return Processes(state.process_index, state.num_processes, state.local_process_index)


def launch_command(num_processes: int, args: list[str]) -> list[str]:
    """The command that runs ``python -m <args>`` in ``num_processes`` processes on this machine.

    ``torchrun --standalone`` (picks a free port itself, works offline); ``num_processes == 1`` gives
    a plain ``python -m`` with no launcher. Example: ``launch_command(2, ["seed.cli", "purify", ...])``.
    """
    if num_processes < 1:
        raise SeedError(f"num_processes = {num_processes} must be at least 1")
    if num_processes == 1:
        return [sys.executable, "-m", *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={num_processes}",
        "-m",
        *args,
    ]


__all__ = ["Processes", "current_processes", "launch_command", "launched_world_size"]
