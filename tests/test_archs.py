"""Architecture-generic end to end: purify and one distillation step on tiny LLaVA, Qwen2-VL and InternVL."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from seed.base.tiny import save_tiny
from seed.core.noise import add_diffusion_noise, sample_seed
from seed.core.purify import densify, purify_logits, sparsify_targets
from seed.files.manifest import read_manifest
from seed.model.adapter import AdapterConfig, find_lora_targets
from seed.model.batching import IGNORE_INDEX, build_batch, render_prompt
from seed.model.generate import image_token_ids, load_pretrained, open_image
from seed.model.student import load_targets, student_batch
from seed.stages.distill import DistillConfig, distill
from seed.stages.purify import PurifyConfig, build_targets
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

ARCHS = ["llava", "qwen2_vl", "internvl"]
PURIFY = PurifyConfig(max_new_tokens=4, batch_size=3, top_k=8, max_samples=3)
DISTILL = DistillConfig(batch_size=3, max_steps=1, adapter=AdapterConfig(lora_r=2))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("archs") / "world"
    config = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=2)
    synthesize(out, config, progress=False)
    return out


@pytest.fixture(scope="module", params=ARCHS)
def pipeline(request, world, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp(request.param)
    model_dir = save_tiny(request.param, root / "model")
    meta = build_targets(model_dir, world, root / "targets", PURIFY, progress=False)
    summary = distill(model_dir, world, root / "targets", root / "adapter", DISTILL, progress=False)
    return {"arch": request.param, "model": model_dir, "root": root, "meta": meta, "summary": summary}


def test_purify_writes_targets_for_every_arch(pipeline):
    manifest = read_manifest(pipeline["root"] / "targets")
    counts = pipeline["meta"]["counts"]
    assert counts["samples"] + counts["skipped_responses"] == 3
    assert manifest.num_samples == counts["samples"] > 0 and manifest.top_k == PURIFY.top_k


def test_inputs_place_image_tokens_and_mask_prompt_and_image(pipeline, world):
    _, processor = load_pretrained(pipeline["model"])
    samples, _ = load_targets(pipeline["root"] / "targets")
    batch = student_batch(processor, world, samples)  # also checks the response ids the teacher saw
    image_ids = image_token_ids(processor)
    labels, ids = batch["labels"], batch["input_ids"]
    for i, sample in enumerate(samples):
        image = open_image(world / "images" / "seed" / sample.image)
        alone = processor(
            images=[[image]], text=[render_prompt(processor, sample.prompt)], return_tensors="pt"
        )
        prompt = alone["input_ids"][0]
        placed = sum(int((prompt == t).sum()) for t in image_ids)
        assert placed > 0 and sum(int((ids[i] == t).sum()) for t in image_ids) == placed
        assert torch.equal(ids[i, : len(prompt)], prompt)
        assert (labels[i, : len(prompt)] == IGNORE_INDEX).all()  # prompt and image tokens carry no loss
        assert int((labels[i] != IGNORE_INDEX).sum()) == sample.targets.indices.shape[0]


def test_lora_targets_are_found_automatically(pipeline):
    model, _ = load_pretrained(pipeline["model"])
    saved = json.loads((pipeline["root"] / "adapter" / "adapter_config.json").read_text())
    expected = find_lora_targets(model)
    assert sorted(saved["target_modules"]) == sorted(expected)
    assert not any(part in name for name in expected for part in ("vision", "visual", "projector"))
    assert pipeline["summary"]["trainable_params"] > 0


def test_one_distillation_step_has_a_finite_loss(pipeline):
    summary = pipeline["summary"]
    assert summary["steps"] == 1 and math.isfinite(summary["loss_first"]) and summary["loss_first"] >= 0
    losses = json.loads((pipeline["root"] / "adapter" / "losses.json").read_text())
    assert len(losses) == 1 and math.isfinite(losses[0])


def test_batched_contrast_equals_separate_passes(pipeline, world):
    """The 2B clean+noised forward gives what a clean and a noised forward of the sample alone give."""
    model, processor = load_pretrained(pipeline["model"])
    samples, _ = load_targets(pipeline["root"] / "targets")
    sample = samples[-1]
    image = open_image(world / "images" / "seed" / sample.image)
    batch = build_batch(processor, [image], [sample.prompt], [sample.response])
    labels = batch.pop("labels")[0]
    noised = add_diffusion_noise(batch["pixel_values"][None], 500, seeds=[sample_seed(sample.sample_id, 0)])[
        0
    ]
    with torch.no_grad():
        clean_logits = model(**batch).logits[0]
        noised_logits = model(**{**batch, "pixel_values": noised}).logits[0]
    positions = (labels != IGNORE_INDEX).nonzero().squeeze(1) - 1
    log_probs, support = purify_logits(clean_logits[positions], noised_logits[positions], 1.0, 0.1)
    vocab = clean_logits.shape[-1]
    want, want_mask = densify(sparsify_targets(log_probs, support, PURIFY.top_k), vocab)
    got, got_mask = densify(sample.targets, vocab)
    assert torch.equal(got_mask, want_mask)
    assert torch.allclose(got[got_mask], want[want_mask], atol=2e-3)
