"""Training checkpoints of stage `distill`: safetensors for the tensors, JSON for the rest, no pickle.

```
 CKPT_DIR/
   step-00000050.safetensors   param.<name>           trainable (LoRA) weights
                               optim.<i>.<key>        AdamW state of trainable parameter i (exp_avg, ...)
                               rng.<rank>.torch       torch CPU generator state of each process (uint8)
                               rng.<rank>.cuda.<d>    CUDA generator states (when the run uses CUDA)
   step-00000050.json          format, run key, step, losses so far, tokens seen, the sha256 of the
                               .safetensors file, optimizer param_groups and non-tensor state,
                               scheduler state, Python and NumPy RNG states of each process
```

The JSON is written last and is the commit mark: a checkpoint counts only when its JSON exists,
its run key equals the current run's, and its tensor file has the recorded sha256. Both files go
through `seed.files.atomic.write_atomic`, so a kill at any moment leaves the previous checkpoint intact;
older checkpoints are removed only after the new JSON is on disk. Floats in JSON round-trip exactly
(Python writes the shortest repr that reads back to the same double).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import DataError
from seed.files.atomic import write_atomic

if TYPE_CHECKING:
    import torch

CHECKPOINT_FORMAT = "seed-distill-checkpoint"
CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8})\.json$")


def _stem(step: int) -> str:
    return f"step-{step:08d}"


# ---------------------------------------------------------------------------------------------------
# Random number generators


def rng_state(use_cuda: bool = False) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """This process's RNG states: ``(json part, tensor part)``.

    JSON: Python's `random` state and NumPy's legacy global state. Tensors: ``torch`` (CPU
    generator) and ``cuda.<d>`` for every CUDA device when ``use_cuda``.
    """
    import random

    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    json_part = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    tensors = {"torch": torch.get_rng_state()}
    if use_cuda and torch.cuda.is_available():
        for d, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{d}"] = state
    return json_part, tensors


def set_rng_state(json_part: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Restore what `rng_state` returned."""
    import random

    import numpy as np
    import torch

    version, internal, gauss = json_part["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = json_part["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])


# ---------------------------------------------------------------------------------------------------
# Save and load


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the step reached (steps done), the run's losses and tokens so far."""

    path: Path
    step: int
    losses: list[float]
    tokens_seen: int
    rng: list[tuple[dict[str, Any], dict[str, torch.Tensor]]]


def _optimizer_parts(optimizer: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``optimizer.state_dict()`` split into a JSON-able structure and flat tensors ``optim.<i>.<key>``."""
    import torch

    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}, tensors


def _optimizer_state(parts: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Inverse of `_optimizer_parts`: the dict that ``optimizer.load_state_dict`` takes."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for index, values in parts["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = []
    for group in parts["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    folder: str | Path,
    step: int,
    run_key: dict[str, Any],
    parameters: dict[str, torch.Tensor],
    optimizer: Any,
    scheduler: Any,
    rng: Sequence[tuple[dict[str, Any], dict[str, torch.Tensor]]],
    losses: Sequence[float],
    tokens_seen: int,
) -> Path:
    """Write the checkpoint of ``step`` (steps done) into ``folder``; remove older ones. Returns the JSON.

    Args:
        parameters: the trainable weights by name (the LoRA A/B matrices).
        optimizer / scheduler: torch optimizer and LR scheduler (state_dict / load_state_dict).
        rng: one `rng_state` per process, in rank order.
        losses / tokens_seen: the run's progress so far, restored with it.
    """
    from safetensors.torch import save

    from seed.files.hashing import content_hash

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"param.{name}": value.detach().to("cpu").contiguous().clone() for name, value in parameters.items()
    }
    optim_json, optim_tensors = _optimizer_parts(optimizer)
    tensors.update(optim_tensors)
    for rank, (_, rng_tensors) in enumerate(rng):
        for key, value in rng_tensors.items():
            tensors[f"rng.{rank}.{key}"] = value.to("cpu").contiguous().clone()
    tensor_path = write_atomic(folder / f"{_stem(step)}.safetensors", save(tensors))
    record = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "run": run_key,
        "step": step,
        "losses": list(losses),
        "tokens_seen": tokens_seen,
        "sha256": content_hash(tensor_path),
        "optimizer": optim_json,
        "scheduler": scheduler.state_dict(),
        "rng": [json_part for json_part, _ in rng],
    }
    json_path = write_atomic(folder / f"{_stem(step)}.json", (json.dumps(record, indent=1) + "\n").encode())
    for old in folder.glob("step-*"):
        if old.name.split(".")[0] != _stem(step):
            old.unlink(missing_ok=True)
    return json_path


def _candidates(folder: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in folder.glob("step-*.json") if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def load_checkpoint(
    folder: str | Path,
    run_key: dict[str, Any],
    parameters: dict[str, torch.Tensor],
    optimizer: Any,
    scheduler: Any,
) -> Checkpoint | None:
    """Restore the newest valid checkpoint of this run into ``parameters``, ``optimizer``, ``scheduler``.

    A checkpoint of another run (different key), an unreadable one, or one whose tensor file does not
    match its recorded sha256 is skipped. Returns None when there is nothing to resume (nothing is
    changed then). The RNG states are returned, not applied: each process applies its own.
    """
    import torch
    from safetensors.torch import load_file

    from seed.files.hashing import content_hash

    folder = Path(folder)
    if not folder.is_dir():
        return None
    for step, json_path in _candidates(folder):
        try:
            record = json.loads(json_path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        tensor_path = json_path.with_suffix(".safetensors")
        if (
            not isinstance(record, dict)
            or record.get("format") != CHECKPOINT_FORMAT
            or record.get("run") != json.loads(json.dumps(run_key))
            or record.get("step") != step
            or not tensor_path.is_file()
            or content_hash(tensor_path) != record.get("sha256")
        ):
            continue
        tensors = load_file(str(tensor_path))
        missing = sorted(name for name in parameters if f"param.{name}" not in tensors)
        if missing:
            raise DataError(
                tensor_path, f"no weights for {len(missing)} trainable parameters", field=missing[0]
            )
        with torch.no_grad():
            for name, param in parameters.items():
                param.copy_(tensors[f"param.{name}"])
        optimizer.load_state_dict(_optimizer_state(record["optimizer"], tensors))
        scheduler.load_state_dict(record["scheduler"])
        rng = []
        for rank, json_part in enumerate(record["rng"]):
            prefix = f"rng.{rank}."
            rng.append((json_part, {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}))
        return Checkpoint(
            json_path, step, [float(x) for x in record["losses"]], int(record["tokens_seen"]), rng
        )
    return None


__all__ = ["Checkpoint", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]
