from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from seed.errors import DataError
from seed.files.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

KEY = {"model_hash": "abc", "config": {"lr": 0.01, "betas": [0.9, 0.999]}, "processes": 1}


def _trainer(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    return model, optimizer, scheduler


def _step(model, optimizer, scheduler) -> float:
    loss = model(torch.randn(3, 4)).pow(2).mean()  # draws from the global RNG (inputs and dropout)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def _params(model) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


def test_resuming_continues_exactly_like_the_uninterrupted_run(tmp_path):
    model, optimizer, scheduler = _trainer()
    losses = [_step(model, optimizer, scheduler) for _ in range(3)]
    random.random()  # the Python and NumPy generators move too
    np.random.rand()
    save_checkpoint(tmp_path, 3, KEY, _params(model), optimizer, scheduler, [rng_state()], losses, 42)
    expected_next = [_step(model, optimizer, scheduler) for _ in range(2)]
    expected_draws = (random.random(), float(np.random.rand()))

    fresh, fresh_optimizer, fresh_scheduler = _trainer(seed=1)  # other weights, other RNG
    resumed = load_checkpoint(tmp_path, KEY, _params(fresh), fresh_optimizer, fresh_scheduler)
    assert resumed is not None and (resumed.step, resumed.losses, resumed.tokens_seen) == (3, losses, 42)
    set_rng_state(*resumed.rng[0])
    assert [_step(fresh, fresh_optimizer, fresh_scheduler) for _ in range(2)] == expected_next
    assert (random.random(), float(np.random.rand())) == expected_draws
    for name, value in _params(model).items():
        assert torch.equal(value, _params(fresh)[name]), name
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_checkpoints_are_safetensors_and_json_and_only_the_newest_is_kept(tmp_path):
    model, optimizer, scheduler = _trainer()
    for step in (1, 2):
        _step(model, optimizer, scheduler)
        save_checkpoint(tmp_path, step, KEY, _params(model), optimizer, scheduler, [rng_state()], [0.5], 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002.json", "step-00000002.safetensors"]
    record = json.loads((tmp_path / "step-00000002.json").read_text())
    assert record["step"] == 2 and record["run"] == KEY and record["optimizer"]["param_groups"][0]["lr"] > 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "step-00000002.safetensors"), framework="pt") as fh:
        keys = set(fh.keys())
    assert {"param.0.weight", "optim.0.exp_avg", "optim.0.exp_avg_sq", "optim.0.step", "rng.0.torch"} <= keys


def test_a_checkpoint_of_another_run_or_with_damaged_tensors_is_not_resumed(tmp_path):
    model, optimizer, scheduler = _trainer()
    _step(model, optimizer, scheduler)
    save_checkpoint(tmp_path, 1, KEY, _params(model), optimizer, scheduler, [rng_state()], [0.5], 7)
    fresh, fresh_optimizer, fresh_scheduler = _trainer(seed=1)
    before = {k: v.clone() for k, v in _params(fresh).items()}
    other = {**KEY, "processes": 2}
    assert load_checkpoint(tmp_path, other, _params(fresh), fresh_optimizer, fresh_scheduler) is None
    assert (
        load_checkpoint(tmp_path / "missing", KEY, _params(fresh), fresh_optimizer, fresh_scheduler) is None
    )
    tensors = tmp_path / "step-00000001.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF
    tensors.write_bytes(bytes(data))
    assert load_checkpoint(tmp_path, KEY, _params(fresh), fresh_optimizer, fresh_scheduler) is None
    (tmp_path / "step-00000001.json").unlink()  # a kill between the two writes: tensors without JSON
    assert load_checkpoint(tmp_path, KEY, _params(fresh), fresh_optimizer, fresh_scheduler) is None
    assert all(torch.equal(v, before[k]) for k, v in _params(fresh).items())
    assert fresh_optimizer.state_dict()["state"] == {}


def test_a_checkpoint_without_the_trainable_weights_is_an_error(tmp_path):
    model, optimizer, scheduler = _trainer()
    save_checkpoint(tmp_path, 1, KEY, {}, optimizer, scheduler, [rng_state()], [], 0)
    with pytest.raises(DataError, match="trainable parameters"):
        load_checkpoint(tmp_path, KEY, _params(model), optimizer, scheduler)
