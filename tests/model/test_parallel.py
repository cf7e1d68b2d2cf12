"""Data-parallel stages: purify shards by rank, distill trains with DDP; both match one process.

The two-process runs fork the test process as the ranks of a gloo group (fast); one slow test goes
through the real launcher (`torchrun --standalone -m seed.cli purify`), as the README documents.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seed.base.tiny import save_tiny
from seed.errors import SeedError
from seed.files.manifest import read_manifest
from seed.files.shards import shard_owner, targets_differences
from seed.model.adapter import AdapterConfig
from seed.model.parallel import Processes, current_processes, launch_command, launched_world_size
from seed.model.trainer import local_indices
from seed.stages.distill import DistillConfig, distill
from seed.stages.purify import PurifyConfig, build_targets, check_multiprocess_targets
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

sys.path.insert(0, str(Path(__file__).parent.parent))
import forked  # noqa: E402

needs_gloo = pytest.mark.skipif(
    not forked.gloo_available(), reason="torch.distributed with gloo and fork needed"
)

# 16 samples, 3 per shard: 6 shards, rank 0 computes 0, 2, 4 and rank 1 computes 1, 3, 5.
PURIFY = PurifyConfig(max_new_tokens=4, batch_size=4, shard_size=3, top_k=8)
# 16 samples, 5 per batch: 4 steps per epoch, the last one with one sample (rank 1 gets weight 0).
DISTILL = DistillConfig(
    batch_size=5,
    epochs=2,
    lr=2e-2,
    warmup_steps=1,
    checkpoint_every=0,
    adapter=AdapterConfig(lora_r=4, lora_alpha=8),
)
# Stated tolerances of 2 processes against 1 (float32, CPU): the global-batch gradient is summed in
# another order, so per-step losses agree to rounding and Adam carries it into the weights.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-4


def _both_stages(llava: Path, world: Path, root: Path) -> dict:
    """One rank of a two-process run: purify, then distill on the targets just written."""
    meta = build_targets(llava, world, root / "targets", PURIFY, progress=False)
    summary = distill(llava, world, root / "targets", root / "adapter", DISTILL, progress=False)
    return {"meta": meta, "summary": summary}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("parallel") / "world"
    config = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=2)
    synthesize(out, config, progress=False)
    return out


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> Path:
    return save_tiny("llava", tmp_path_factory.mktemp("parallel") / "llava")


@pytest.fixture(scope="module")
def one_process(world, llava, tmp_path_factory) -> tuple[Path, dict, Path, dict]:
    root = tmp_path_factory.mktemp("parallel-1")
    meta = build_targets(llava, world, root / "targets", PURIFY, progress=False)
    summary = distill(llava, world, root / "targets", root / "adapter", DISTILL, progress=False)
    return root / "targets", meta, root / "adapter", summary


# --- the process facade -------------------------------------------------------------------------------


def test_a_process_without_launcher_is_a_world_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    procs = current_processes("cpu")
    assert procs == Processes(0, 1, 0) and procs.is_main and not procs.distributed
    assert procs.gather({"x": 1}) == [{"x": 1}]
    procs.barrier()  # no process group: returns at once
    assert procs.device("cuda") == "cuda" and Processes(1, 2, 1).device("cuda") == "cuda:1"
    assert Processes(1, 2, 1).device("cuda:0") == "cuda:0" and Processes(1, 2, 1).device("cpu") == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(SeedError, match="WORLD_SIZE"):
        launched_world_size()


def test_launch_command_uses_torchrun_only_for_several_processes():
    assert launch_command(1, ["seed.stages", "purify"]) == [sys.executable, "-m", "seed.stages", "purify"]
    cmd = launch_command(3, ["seed.stages", "purify"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert (
        "--standalone" in cmd and "--nproc_per_node=3" in cmd and cmd[-3:] == ["-m", "seed.stages", "purify"]
    )
    with pytest.raises(SeedError, match="num_processes"):
        launch_command(0, ["seed.stages"])


@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
def test_every_shard_and_every_sample_has_exactly_one_owner(world_size):
    owners = [shard_owner(i, world_size) for i in range(10)]
    assert sorted(set(owners)) == list(range(min(10, world_size)))
    batch = [4, 9, 1, 7, 3]
    shares = [local_indices(batch, Processes(r, world_size, r)) for r in range(world_size)]
    counted = [i for share, counts in shares if counts for i in share]
    assert sorted(counted) == sorted(batch)  # each sample once, over the ranks that count
    assert all(share for share, _ in shares)  # a rank without samples still runs (weight 0)


def test_targets_differences_names_what_differs(one_process, tmp_path):
    import shutil

    targets = one_process[0]
    copy = tmp_path / "copy"
    shutil.copytree(targets, copy)
    assert targets_differences(targets, copy) == []
    (copy / "shard-00001.samples.json").write_text("{}")
    (copy / "shard-00005.safetensors").unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["num_tokens"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert targets_differences(targets, copy) == [
        "shard-00001.samples.json: bytes differ",
        f"shard-00005.safetensors: only in {targets}",
        "manifest.json: num_tokens differ",
    ]


# --- two processes against one --------------------------------------------------------------------------


@needs_gloo
def test_two_processes_give_the_same_targets_and_training(one_process, world, llava, tmp_path):
    targets_1, meta_1, adapter_1, summary_1 = one_process
    root = tmp_path / "two"

    results = forked.run_ranks(partial(_both_stages, llava, world, root), 2, tmp_path)
    # purify: the union of the ranks' shards is byte for byte the one-process folder
    assert targets_differences(targets_1, root / "targets") == []
    assert [e.sha256 for e in read_manifest(root / "targets").shards] == [
        e.sha256 for e in read_manifest(targets_1).shards
    ]
    for result in results:
        assert result["meta"]["processes"] == 2 and result["meta"]["counts"] == meta_1["counts"]
    # distill: same steps, tokens and loss curve, within the stated tolerance
    summaries = [r["summary"] for r in results]
    on_disk = json.loads((root / "adapter" / "summary.json").read_text())
    run_only = {"seconds", "processes", "resumed_from_step"}  # how the run went is not on disk
    assert on_disk == {k: v for k, v in summaries[0].items() if k not in run_only}
    assert all(s["processes"] == 2 and s["steps"] == summary_1["steps"] == 8 for s in summaries)
    assert summaries[0]["tokens_seen"] == summary_1["tokens_seen"]
    losses_1 = json.loads((adapter_1 / "losses.json").read_text())
    losses_2 = json.loads((root / "adapter" / "losses.json").read_text())
    assert losses_2 == pytest.approx(losses_1, rel=LOSS_RTOL)
    assert summaries[1]["loss_last"] == summaries[0]["loss_last"]  # every rank logs the global loss
    weights_1 = load_file(str(adapter_1 / "adapter_model.safetensors"))
    weights_2 = load_file(str(root / "adapter" / "adapter_model.safetensors"))
    assert weights_1.keys() == weights_2.keys()
    assert any(bool(v.abs().max() > 1e-3) for k, v in weights_2.items() if "lora_B" in k)  # B left 0
    for name in weights_1:
        assert torch.allclose(weights_1[name], weights_2[name], rtol=0, atol=WEIGHT_ATOL), name


@needs_gloo
@pytest.mark.slow
def test_torchrun_launch_of_the_cli_gives_the_same_targets(one_process, world, llava, tmp_path):
    """The documented path: ``torchrun --standalone --nproc_per_node 2 -m seed.cli purify``."""
    env_before = dict(os.environ)
    result = check_multiprocess_targets(
        llava, world, tmp_path, dataclasses.replace(PURIFY), num_processes=2, reference=one_process[0]
    )
    assert dict(os.environ) == env_before
    assert result["identical"], result["differences"]
    assert result["shards"] == 6 and set(result["seconds"]) == {"2"}
    written = json.loads((tmp_path / "processes-2" / "manifest.json").read_text())["meta"]
    assert "processes" not in written  # the manifest does not depend on how many processes wrote it


@needs_gloo
def test_two_processes_train_online_like_one(world, llava, tmp_path):
    """Online mode: generation batches are split over the ranks and gathered back in file order."""
    config = dataclasses.replace(DISTILL, online=True, max_steps=2)
    purify = dataclasses.replace(PURIFY, max_samples=9)  # 3 generation batches: 2 on rank 0, 1 on rank 1
    one = distill(llava, world, None, tmp_path / "one", config, progress=False, purify_config=purify)

    online = partial(distill, llava, world, None, tmp_path / "two", config, False, purify)
    two = forked.run_ranks(online, 2, tmp_path)
    assert two[0]["samples"] == two[1]["samples"] == one["samples"] and two[0]["processes"] == 2
    assert two[0]["tokens_seen"] == one["tokens_seen"]
    losses_1 = json.loads((tmp_path / "one" / "losses.json").read_text())
    assert json.loads((tmp_path / "two" / "losses.json").read_text()) == pytest.approx(
        losses_1, rel=LOSS_RTOL
    )
