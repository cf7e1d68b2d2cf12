from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from PIL import Image
from transformers import AutoModelForImageTextToText

from seed.base.tiny import load_tiny, save_tiny
from seed.core.losses import distillation_loss
from seed.errors import ConfigError, DataError
from seed.files.hashing import content_hash
from seed.files.manifest import read_manifest
from seed.model.adapter import AdapterConfig, attach_adapter, find_lora_targets
from seed.model.batching import build_batch
from seed.model.student import load_targets, stack_targets, student_batch, student_logits
from seed.model.trainer import sample_order, train_adapter
from seed.params import config_from_dict
from seed.stages.distill import (
    DistillConfig,
    checkpoint_key,
    checkpoint_path,
    distill,
    merge_and_save,
)
from seed.stages.purify import PurifyConfig, build_targets
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

sys.path.insert(0, str(Path(__file__).parent.parent))
import forked  # noqa: E402

PURIFY = PurifyConfig(max_new_tokens=4, batch_size=4, shard_size=64, top_k=8)
# One batch holds every sample, so each step sees the same batch: the loss must go down.
CONFIG = DistillConfig(
    batch_size=64, epochs=5, lr=2e-2, warmup_steps=0, adapter=AdapterConfig(lora_r=4, lora_alpha=8)
)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("distill") / "world"
    config = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=2)
    synthesize(out, config, progress=False)
    return out


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> Path:
    return save_tiny("llava", tmp_path_factory.mktemp("distill") / "llava")


@pytest.fixture(scope="module")
def targets(world, llava, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("distill") / "targets"
    build_targets(llava, world, out, PURIFY, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(world, llava, targets, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("distill") / "adapter"
    return out, distill(llava, world, targets, out, CONFIG, progress=False)


def _probe_batch(processor):
    image = Image.new("RGB", (48, 48), (200, 30, 30))
    return build_batch(processor, [image], ["Is there a cat in the image?"], ["Yes, there is a cat."])


def _logits(model, batch):
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def test_config_defaults_and_validation():
    config = DistillConfig()
    assert (config.loss, config.epochs, config.batch_size, config.lr) == ("reverse_kl", 1, 16, 5e-4)
    assert (config.weight_decay, config.warmup_steps, config.grad_clip, config.seed) == (0.0, 10, 1.0, 0)
    assert (config.dtype, config.device, config.online) == ("float32", "cpu", False)
    assert config.adapter == AdapterConfig()
    for field, bad in [
        ("loss", "kl"),
        ("epochs", 0),
        ("batch_size", 1.5),
        ("lr", 0),
        ("weight_decay", -1),
        ("warmup_steps", -1),
        ("grad_clip", -1),
        ("dtype", "int8"),
        ("device", "tpu"),
        ("online", 1),
        ("adapter", 4),
        ("balance", "yes"),
    ]:
        with pytest.raises(ConfigError, match=f"distill.{field}"):
            DistillConfig(**{field: bad})
    from_yaml = config_from_dict(
        DistillConfig, {"adapter": {"lora_r": 4, "target_modules": ["q_proj"]}}, "distill"
    )
    assert from_yaml.adapter == AdapterConfig(lora_r=4, target_modules=["q_proj"])
    assert config.balance == "none"
    with pytest.raises(ConfigError, match=r"distill.balance = 'answer' needs stored targets"):
        DistillConfig(online=True, balance="answer")
    with pytest.raises(ConfigError, match=r"^distill\.adapter\.lora_r = 0"):
        DistillConfig(adapter={"lora_r": 0})
    with pytest.raises(ConfigError, match=r"params.yaml: unknown key\(s\) distill\.adapter\.rank;"):
        config_from_dict(DistillConfig, {"adapter": {"rank": 4}}, "distill")


def test_distill_writes_adapter_losses_and_summary(trained, targets, llava):
    out, summary = trained
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "losses.json", "summary.json"} <= names
    losses = json.loads((out / "losses.json").read_text())
    # what the adapter is, not how the run went: the folder's bytes do not depend on it
    run_only = {"seconds", "processes", "resumed_from_step"}
    assert json.loads((out / "summary.json").read_text()) == {
        k: v for k, v in summary.items() if k not in run_only
    }
    assert summary["seconds"] > 0
    samples, _ = load_targets(targets)
    assert summary["samples"] == len(samples) and summary["steps"] == len(losses) == CONFIG.epochs
    assert summary["tokens_seen"] == CONFIG.epochs * sum(s.targets.indices.shape[0] for s in samples)
    assert summary["loss_first"] == losses[0] and summary["loss_last"] == losses[-1]
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["r"] == 4 and saved["bias"] == "none"
    model, _ = load_tiny(llava)
    modules = dict(model.named_modules())
    linears = [modules[name] for name in find_lora_targets(model)]
    assert summary["trainable_params"] == sum(4 * (m.in_features + m.out_features) for m in linears)
    assert not list(out.parent.glob(".adapter.tmp-*"))


def test_loss_decreases_on_a_repeated_batch(trained):
    _, summary = trained
    losses = json.loads((trained[0] / "losses.json").read_text())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] - 1e-3
    assert summary["loss_last"] < summary["loss_first"]


def test_first_loss_is_the_loss_of_the_base_model_on_the_stored_targets(trained, targets, world, llava):
    """Step 0's student is the base model: its loss, computed by hand, is the logged one."""
    losses = json.loads((trained[0] / "losses.json").read_text())
    model, processor = load_tiny(llava)
    samples, _ = load_targets(targets)
    chunk = [samples[i] for i in sample_order(len(samples), CONFIG.seed, 0)]
    batch = student_batch(processor, world, chunk)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    mask = labels != -100
    shifted = logits[:, :-1][mask[:, 1:]]  # logits at t predict the token at t + 1
    indices, log_probs = stack_targets(chunk)
    expected = distillation_loss(
        "reverse_kl", shifted[None], indices, log_probs, torch.ones(indices.shape[:2])
    )
    assert losses[0] == pytest.approx(float(expected), rel=1e-5)


def test_saved_adapter_reloads_with_the_in_memory_logits(trained, targets, world, llava):
    out, _ = trained
    model, processor = load_tiny(llava)
    samples, _ = load_targets(targets)
    torch.manual_seed(CONFIG.seed)
    in_memory = attach_adapter(model, CONFIG.adapter)
    losses, _, _ = train_adapter(in_memory, processor, world, samples, CONFIG, progress=False)
    assert losses == json.loads((out / "losses.json").read_text())  # the run is repeatable
    in_memory.eval()
    batch = _probe_batch(processor)
    base, _ = load_tiny(llava)
    before = _logits(base, batch)
    reloaded = PeftModel.from_pretrained(base, str(out)).eval()
    after = _logits(reloaded, batch)
    assert torch.allclose(after, _logits(in_memory, batch), atol=1e-6)
    assert not torch.allclose(after, before, atol=1e-4)  # the adapter changed something
    vision = [n for n, p in in_memory.named_parameters() if p.requires_grad and "lora_" not in n]
    assert vision == []  # only LoRA weights trained; vision tower and projector frozen


def test_forward_kl_is_selectable(targets, world, llava, tmp_path):
    config = dataclasses.replace(CONFIG, loss="forward_kl", max_steps=1)
    summary = distill(llava, world, targets, tmp_path / "fkl", config, progress=False)
    assert summary["loss"] == "forward_kl" and summary["steps"] == 1
    model, processor = load_tiny(llava)
    samples, _ = load_targets(targets)
    chunk = [samples[i] for i in sample_order(len(samples), config.seed, 0)]
    batch = student_batch(processor, world, chunk)
    with torch.no_grad():
        logits = student_logits(model, batch)
    indices, log_probs = stack_targets(chunk)
    expected = distillation_loss(
        "forward_kl", logits[None], indices, log_probs, torch.ones(indices.shape[:2])
    )
    assert summary["loss_first"] == pytest.approx(float(expected), rel=1e-5)


def test_online_targets_equal_offline_ones(trained, world, llava, tmp_path):
    config = dataclasses.replace(CONFIG, online=True, max_steps=1)
    summary = distill(llava, world, None, tmp_path / "online", config, progress=False, purify_config=PURIFY)
    assert summary["online"] and summary["targets"] is None and summary["steps"] == 1
    assert summary["samples"] == trained[1]["samples"]
    assert summary["loss_first"] == pytest.approx(trained[1]["loss_first"], rel=1e-4)
    with pytest.raises(ConfigError, match="distill.online"):
        distill(llava, world, None, tmp_path / "x", CONFIG, progress=False)
    centred = dataclasses.replace(PURIFY, centre="split")  # online targets are never centred
    with pytest.raises(ConfigError, match="purify.centre is 'split'"):
        distill(llava, world, None, tmp_path / "y", config, progress=False, purify_config=centred)


def test_rebuilt_inputs_must_match_what_the_teacher_saw(targets, world, llava, tmp_path):
    copy = tmp_path / "targets"
    shutil.copytree(targets, copy)
    sidecar_path = copy / "shard-00000.samples.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["samples"][0]["response"] += " and more"
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(DataError, match="extra.response_ids"):
        distill(llava, world, copy, tmp_path / "adapter", CONFIG, progress=False)
    assert not (tmp_path / "adapter").exists()


def test_targets_of_another_model_are_refused(targets, world, tmp_path):
    other = save_tiny("llava", tmp_path / "other", seed=1)
    with pytest.raises(DataError, match="meta.model_hash"):
        distill(other, world, targets, tmp_path / "adapter", CONFIG, progress=False)


def test_merged_model_loads_and_matches_the_adapter(trained, llava, tmp_path):
    out, _ = trained
    merged_dir = merge_and_save(llava, out, tmp_path / "merged")
    assert (merged_dir / "model.safetensors").is_file()
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir).eval()
    _, processor = load_tiny(merged_dir)  # the processor was saved beside the weights
    batch = _probe_batch(processor)
    base, _ = load_tiny(llava)
    adapted = PeftModel.from_pretrained(base, str(out)).eval()
    assert torch.allclose(_logits(merged, batch), _logits(adapted, batch), atol=1e-5)
    assert not any("lora_" in name for name, _ in merged.named_parameters())


def test_no_usable_response_is_an_error_not_a_crash(world, llava, tmp_path, monkeypatch):
    import seed.model.generate

    monkeypatch.setattr(
        seed.model.generate,
        "answer_batch",
        lambda model, processor, images, questions, *a, **k: [""] * len(questions),
    )
    meta = build_targets(
        llava, world, tmp_path / "targets", dataclasses.replace(PURIFY, max_samples=2), progress=False
    )
    assert meta["counts"]["samples"] == 0 and meta["counts"]["skipped_responses"] == 2
    with pytest.raises(DataError, match="no samples"):
        distill(llava, world, tmp_path / "targets", tmp_path / "adapter", CONFIG, progress=False)


def test_bfloat16_runs_through_config(world, llava, tmp_path):
    purify = dataclasses.replace(PURIFY, dtype="bfloat16", max_samples=3)
    meta = build_targets(llava, world, tmp_path / "targets", purify, progress=False)
    assert meta["config"]["dtype"] == "bfloat16" and meta["counts"]["tokens"] > 0
    config = dataclasses.replace(CONFIG, dtype="bfloat16", max_steps=1)
    summary = distill(llava, world, tmp_path / "targets", tmp_path / "adapter", config, progress=False)
    assert summary["steps"] == 1 and math.isfinite(summary["loss_first"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bfloat16_end_to_end(world, llava, tmp_path):
    purify = dataclasses.replace(PURIFY, dtype="bfloat16", device="cuda", max_samples=4)
    build_targets(llava, world, tmp_path / "targets", purify, progress=False)
    config = dataclasses.replace(CONFIG, dtype="bfloat16", device="cuda", max_steps=2)
    summary = distill(llava, world, tmp_path / "targets", tmp_path / "adapter", config, progress=False)
    assert math.isfinite(summary["loss_first"])
    online = dataclasses.replace(config, online=True, max_steps=1)
    summary = distill(llava, world, None, tmp_path / "online", online, progress=False, purify_config=purify)
    assert math.isfinite(summary["loss_first"])
    merged = merge_and_save(llava, tmp_path / "adapter", tmp_path / "merged", device="cuda")
    assert (merged / "model.safetensors").is_file()


# --- gradient checkpointing -------------------------------------------------------------------------


def test_config_gradient_checkpointing_default_and_validation():
    assert DistillConfig().gradient_checkpointing is False
    assert DistillConfig(gradient_checkpointing=True).gradient_checkpointing is True
    for bad in (1, "yes", None):
        with pytest.raises(ConfigError, match="distill.gradient_checkpointing"):
            DistillConfig(gradient_checkpointing=bad)


def _lora_step(llava, world, samples, checkpointed, monkeypatch):
    """One online step (adapter-off teacher) by hand: loss, LoRA gradients, checkpointed layer calls."""
    import transformers.modeling_utils

    calls = []
    real = transformers.modeling_utils.checkpoint
    monkeypatch.setattr(
        transformers.modeling_utils, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    from seed.model.adapter import teacher_logits
    from seed.model.generate import image_token_ids
    from seed.model.teacher import teacher_targets
    from seed.model.trainer import _prepare_training, enable_gradient_checkpointing

    model, processor = load_tiny(llava)
    torch.manual_seed(0)
    peft_model = attach_adapter(model, AdapterConfig(lora_r=4, lora_alpha=8))
    with torch.no_grad():  # B != 0: the A matrices get gradients too
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    _prepare_training(peft_model)
    if checkpointed:
        enable_gradient_checkpointing(peft_model)
    batch = student_batch(processor, world, samples)
    computed = teacher_targets(
        lambda **i: teacher_logits(peft_model, **i),
        batch,
        [s.sample_id for s in samples],
        PURIFY,
        image_token_ids(processor),
        peft_model.dtype,
    )
    teacher_calls = len(calls)
    chunk = [dataclasses.replace(s, targets=t.targets) for s, t in zip(samples, computed, strict=True)]
    indices, log_probs = stack_targets(chunk)
    logits = student_logits(peft_model, batch)
    loss = distillation_loss("reverse_kl", logits[None], indices, log_probs, torch.ones(indices.shape[:2]))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads, teacher_calls, len(calls)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(targets, world, llava, monkeypatch):
    samples = [dataclasses.replace(s, targets=None) for s in load_targets(targets)[0][:3]]
    loss, grads, _, plain_calls = _lora_step(llava, world, samples, False, monkeypatch)
    loss_gc, grads_gc, teacher_calls, gc_calls = _lora_step(llava, world, samples, True, monkeypatch)
    assert plain_calls == 0 and teacher_calls == 0  # no checkpointing off, nor in the no_grad teacher
    assert gc_calls > 0  # the student's layers were checkpointed (tiny llava: 2 vision + 2 text layers)
    assert loss_gc == pytest.approx(loss, rel=1e-6, abs=1e-7)
    assert grads.keys() == grads_gc.keys() and any(g.abs().sum() > 0 for g in grads.values())
    for name, grad in grads.items():
        assert torch.allclose(grads_gc[name], grad, rtol=1e-5, atol=1e-7), name


def test_train_adapter_with_gradient_checkpointing_trains_the_same_adapter(targets, world, llava):
    samples = [dataclasses.replace(s, targets=None) for s in load_targets(targets)[0][:4]]
    config = dataclasses.replace(CONFIG, batch_size=2, epochs=1, online=True, checkpoint_every=0)
    out = {}
    for checkpointed in (False, True):
        model, processor = load_tiny(llava)
        torch.manual_seed(config.seed)
        peft_model = attach_adapter(model, config.adapter)
        run = dataclasses.replace(config, gradient_checkpointing=checkpointed)
        losses = train_adapter(peft_model, processor, world, samples, run, PURIFY, progress=False).losses
        weights = {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}
        out[checkpointed] = losses, weights
    assert len(out[True][0]) == 2
    assert out[True][0] == pytest.approx(out[False][0], rel=1e-6, abs=1e-7)
    for name, weight in out[False][1].items():
        assert torch.allclose(out[True][1][name], weight, rtol=1e-5, atol=1e-6), name


# --- crash safety -----------------------------------------------------------------------------------


def test_config_checkpoint_every_default_and_validation():
    assert DistillConfig().checkpoint_every == 50
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="distill.checkpoint_every"):
            DistillConfig(checkpoint_every=bad)


@pytest.mark.skipif(not forked.gloo_available(), reason="needs fork")
def test_sigkill_then_rerun_gives_the_uninterrupted_adapter(targets, world, llava, tmp_path):
    """Kill a real run with SIGKILL after its first checkpoint; the rerun resumes to the same bytes."""
    # 16 samples, 2 per step, 2 epochs: 16 steps, a checkpoint after each; LoRA dropout draws from
    # the RNG, so the RNG state must come back too.
    config = dataclasses.replace(
        CONFIG, batch_size=2, epochs=2, lr=1e-2, checkpoint_every=1, adapter=AdapterConfig(4, 8, 0.1)
    )
    reference = distill(llava, world, targets, tmp_path / "reference", config, progress=False)
    assert reference["resumed_from_step"] == 0 and reference["steps"] == 16
    assert not checkpoint_path(tmp_path / "reference").exists()  # removed once the adapter is written

    out, checkpoints = tmp_path / "adapter", checkpoint_path(tmp_path / "adapter")
    result = tmp_path / "child.json"
    child = forked.start(
        partial(distill, llava, world, targets, out, config, progress=False), result, nice=10
    )
    forked.kill_when(child, result, lambda: bool(list(checkpoints.glob("step-*.json"))))  # os.kill, SIGKILL
    assert not out.exists(), "the run finished before it was killed"
    assert list(checkpoints.glob("step-*.json"))

    summary = distill(llava, world, targets, out, config, progress=False)
    assert 1 <= summary["resumed_from_step"] < 16
    assert json.loads((out / "losses.json").read_text()) == json.loads(
        (tmp_path / "reference" / "losses.json").read_text()
    )
    assert (out / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "reference" / "adapter_model.safetensors"
    ).read_bytes()
    assert summary["tokens_seen"] == reference["tokens_seen"] and not checkpoints.exists()


def test_only_a_checkpoint_of_the_same_settings_is_resumed(targets, world, llava, tmp_path):
    config = dataclasses.replace(CONFIG, batch_size=8, epochs=2, checkpoint_every=1)  # 4 steps
    out = tmp_path / "adapter"
    samples, _ = load_targets(targets)
    shards = [e.sha256 for e in read_manifest(targets).shards]

    def leave_checkpoint() -> None:
        """Train as stage distill would, without the final clean-up: the step-3 checkpoint stays."""
        model, processor = load_tiny(llava)
        torch.manual_seed(config.seed)
        key = checkpoint_key(content_hash(llava), samples, config, shards, None)
        peft_model = attach_adapter(model, config.adapter)
        checkpoints = checkpoint_path(out)
        train_adapter(peft_model, processor, world, samples, config, None, None, False, checkpoints, key)

    leave_checkpoint()
    assert [p.name for p in checkpoint_path(out).glob("*.json")] == ["step-00000003.json"]
    every_two = dataclasses.replace(config, checkpoint_every=2)  # not part of the key
    assert distill(llava, world, targets, out, every_two, progress=False)["resumed_from_step"] == 3
    leave_checkpoint()
    other_lr = dataclasses.replace(config, lr=1e-3)
    assert distill(llava, world, targets, out, other_lr, progress=False)["resumed_from_step"] == 0


def test_answer_balance_weights_the_first_step_loss(targets, world, llava, tmp_path, monkeypatch):
    import seed.model.generate
    from seed.core.balance import answer_weights

    samples, _ = load_targets(targets)
    tops = [int(s.targets.indices[0, 0]) for s in samples]
    yes = tops[0]  # the tiny model answers nothing: two of its first tokens stand in for "Yes" and "No"
    no = next(t for t in tops if t != yes)
    monkeypatch.setattr(seed.model.generate, "yes_no_token_ids", lambda processor: (yes, no))
    answers = ["yes" if t == yes else "no" if t == no else None for t in tops]
    weights = answer_weights(answers)
    assert len(set(weights)) > 1  # the check below tells weighted from plain

    config = dataclasses.replace(CONFIG, balance="answer", max_steps=1)
    summary = distill(llava, world, targets, tmp_path / "balanced", config, progress=False)
    assert summary["balance"]["yes"]["samples"] == answers.count("yes")
    assert summary["balance"]["no"]["samples"] == answers.count("no")
    assert summary["balance"]["other"] == answers.count(None) and summary["config"]["balance"] == "answer"
    model, processor = load_tiny(llava)
    order = sample_order(len(samples), config.seed, 0)
    chunk = [samples[i] for i in order]
    with torch.no_grad():
        logits = student_logits(model, student_batch(processor, world, chunk))
    indices, log_probs = stack_targets(chunk)
    token_weights = torch.cat(
        [torch.full((samples[i].targets.indices.shape[0],), weights[i]) for i in order]
    )[None]
    ones = torch.ones(indices.shape[:2])
    expected = distillation_loss("reverse_kl", logits[None], indices, log_probs, ones, token_weights)
    plain = distillation_loss("reverse_kl", logits[None], indices, log_probs, ones)
    assert summary["loss_first"] == pytest.approx(float(expected), rel=1e-5)
    assert abs(float(expected) - float(plain)) > 1e-4
