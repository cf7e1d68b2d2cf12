from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch

from seed.core.purify import SparseTargets, sparsify_targets
from seed.errors import DataError
from seed.files.hashing import content_hash
from seed.files.manifest import MANIFEST_NAME, read_manifest, write_manifest
from seed.files.targets import read_shard, write_shard


def sample_targets(lengths, vocab=50, top_k=8, seed=0):
    """One (n_i, k) SparseTargets per sample, with some padded supports."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        log_p = torch.log_softmax(torch.randn(1, n, vocab, generator=gen) * 3, -1)
        support = log_p >= log_p.max(-1, keepdim=True).values + torch.log(torch.tensor(0.05))
        out.append(sparsify_targets(log_p, support, top_k=top_k)[0])
    return out


def assert_same(a: SparseTargets, b: SparseTargets):
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.log_probs, b.log_probs)  # -inf == -inf under torch.equal
    assert torch.equal(a.tail_mass, b.tail_mass)


def test_shard_round_trip_is_exact(tmp_path):
    parts = sample_targets([3, 0, 7])
    confidence = torch.rand(10)
    path = write_shard(
        tmp_path / "shard-00000.safetensors", parts, ["a", "b", "c"], extra={"confidence": confidence}
    )
    shard, ids = read_shard(path)
    assert ids == ["a", "b", "c"] and len(shard) == 3
    assert shard.offsets.tolist() == [0, 3, 3, 10]
    for i, part in enumerate(parts):
        assert_same(shard[i], part)
    assert shard[1].indices.shape == (0, 8)
    assert_same(shard.get("c"), parts[2])
    assert torch.equal(shard.extra["confidence"], confidence)
    assert torch.equal(shard.extra_for("confidence", 2), confidence[3:])
    # writing the same content twice gives the same bytes
    again = write_shard(
        tmp_path / "again.safetensors", parts, ["a", "b", "c"], extra={"confidence": confidence}
    )
    assert path.read_bytes() == again.read_bytes()


def test_shard_accepts_flat_and_batched_targets(tmp_path):
    parts = sample_targets([2, 4])
    flat = SparseTargets(
        *(torch.cat([getattr(p, f) for p in parts]) for f in ("indices", "log_probs", "tail_mass"))
    )
    shard, _ = read_shard(write_shard(tmp_path / "flat.safetensors", flat, ["x", "y"], lengths=[2, 4]))
    assert_same(shard[1], parts[1])
    log_p = torch.log_softmax(torch.randn(3, 4, 20), -1)
    batched = sparsify_targets(log_p, torch.ones_like(log_p, dtype=torch.bool), top_k=5)
    shard, _ = read_shard(write_shard(tmp_path / "batched.safetensors", batched, ["p", "q", "r"]))
    assert_same(shard[2], batched[2])
    with pytest.raises(DataError, match="lengths"):
        write_shard(tmp_path / "bad.safetensors", flat, ["x", "y"])


def test_shard_rejects_inconsistent_input(tmp_path):
    parts = sample_targets([2, 3])
    with pytest.raises(DataError, match="sample_ids"):
        write_shard(tmp_path / "s.safetensors", parts, ["only-one"])
    with pytest.raises(DataError, match="not unique"):
        write_shard(tmp_path / "s.safetensors", parts, ["a", "a"])
    assert not list(tmp_path.iterdir())


def test_writes_leave_no_temp_files(tmp_path):
    write_shard(tmp_path / "shard-00000.safetensors", sample_targets([2]), ["a"])
    write_manifest(tmp_path, ["shard-00000.safetensors"], {"model_hash": "m"})
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME, "shard-00000.safetensors"]


def test_failing_write_leaves_no_partial_file_and_keeps_old_one(tmp_path, monkeypatch):
    path = tmp_path / "shard-00000.safetensors"
    write_shard(path, sample_targets([2]), ["a"])
    old = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_shard(path, sample_targets([5], seed=1), ["b"])
    with pytest.raises(OSError, match="disk full"):
        write_shard(tmp_path / "new.safetensors", sample_targets([5], seed=1), ["b"])
    assert [p.name for p in tmp_path.iterdir()] == ["shard-00000.safetensors"]
    assert path.read_bytes() == old


def make_target_dir(folder):
    write_shard(folder / "shard-00000.safetensors", sample_targets([2, 3]), ["a", "b"])
    write_shard(folder / "shard-00001.safetensors", sample_targets([4], seed=1), ["c"])
    meta = {"model_hash": "abc", "data_hash": "def", "params": {"cd_alpha": 1.0, "top_k": 8}}
    write_manifest(folder, ["shard-00000.safetensors", folder / "shard-00001.safetensors"], meta)
    return meta


def test_manifest_round_trip(tmp_path):
    meta = make_target_dir(tmp_path)
    manifest = read_manifest(tmp_path)
    assert manifest.num_samples == 3 and manifest.num_tokens == 9 and manifest.top_k == 8
    assert [s.file for s in manifest.shards] == ["shard-00000.safetensors", "shard-00001.safetensors"]
    assert manifest.meta == meta
    raw = (tmp_path / "shard-00001.safetensors").read_bytes()
    assert manifest.shards[1].sha256 == hashlib.sha256(raw).hexdigest()
    shard, ids = read_shard(manifest.shards[1].path)
    assert ids == ["c"]


@pytest.mark.parametrize(
    "bad", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors", "C:\\x.bin"]
)
def test_manifest_path_escape_rejected(tmp_path, bad):
    make_target_dir(tmp_path)
    manifest_path = tmp_path / MANIFEST_NAME
    data = json.loads(manifest_path.read_text())
    data["shards"][1]["file"] = bad
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"manifest\.json.*shards\[1\]\.file") as info:
        read_manifest(tmp_path)
    assert info.value.field == "shards[1].file"


def test_manifest_symlink_escape_rejected(tmp_path):
    inner = tmp_path / "targets"
    inner.mkdir()
    make_target_dir(inner)
    (tmp_path / "elsewhere.safetensors").write_bytes(b"x")
    (inner / "link.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    data = json.loads((inner / MANIFEST_NAME).read_text())
    data["shards"][0]["file"] = "link.safetensors"
    (inner / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(DataError, match="outside"):
        read_manifest(inner)
    with pytest.raises(DataError, match="outside"):
        write_manifest(inner, ["link.safetensors"], {})


def test_manifest_hash_mismatch_detected(tmp_path):
    make_target_dir(tmp_path)
    shard = tmp_path / "shard-00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the tensor payload
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"shards\[0\]\.sha256"):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path, verify_hashes=False).num_samples == 3


def test_manifest_missing_or_malformed(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_manifest(tmp_path)
    with pytest.raises(DataError, match="meta"):
        write_manifest(tmp_path, [], {"bad": object()})


def test_read_shard_rejects_foreign_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(DataError, match="format"):
        read_shard(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="safetensors"):
        read_shard(tmp_path / "junk.safetensors")
    with pytest.raises(DataError, match="not found"):
        read_shard(tmp_path / "missing.safetensors")


def test_content_hash_file_and_folder(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_bytes(b"hello")
    (tmp_path / "m" / "sub").mkdir()
    (tmp_path / "m" / "sub" / "b.bin").write_bytes(b"\x00\x01")
    assert content_hash(tmp_path / "m" / "a.txt") == hashlib.sha256(b"hello").hexdigest()
    first = content_hash(tmp_path / "m")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "sub").mkdir()
    (copy / "sub" / "b.bin").write_bytes(b"\x00\x01")
    (copy / "a.txt").write_bytes(b"hello")
    assert content_hash(copy) == first  # location and creation order do not matter
    (copy / "a.txt").write_bytes(b"hellO")
    assert content_hash(copy) != first
    (copy / "a.txt").write_bytes(b"hello")
    (copy / "a.txt").rename(copy / "c.txt")
    assert content_hash(copy) != first
    with pytest.raises(DataError, match="no such"):
        content_hash(tmp_path / "nothing")


def test_on_disk_storage_fraction(tmp_path):
    vocab, k, tokens = 32000, 32, 64
    log_p = torch.log_softmax(torch.randn(1, tokens, vocab), -1)
    sparse = sparsify_targets(log_p, torch.ones_like(log_p, dtype=torch.bool), top_k=k)
    path = write_shard(tmp_path / "s.safetensors", [sparse[0]], ["a"])
    dense_fp16_bytes = tokens * vocab * 2
    assert path.stat().st_size / dense_fp16_bytes <= 0.02
