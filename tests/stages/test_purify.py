from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from seed.base.tiny import load_tiny, save_tiny
from seed.core.noise import add_diffusion_noise, sample_seed
from seed.core.purify import densify, purify_logits, sparsify_targets
from seed.errors import ConfigError
from seed.files.hashing import content_hash, data_hash
from seed.files.manifest import read_manifest
from seed.files.samples import load_samples
from seed.files.shards import read_sidecar, targets_differences
from seed.files.targets import read_shard
from seed.model.batching import IGNORE_INDEX, build_batch
from seed.model.generate import open_image
from seed.params import config_from_dict
from seed.stages.purify import PurifyConfig, build_targets
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

sys.path.insert(0, str(Path(__file__).parent.parent))
import forked  # noqa: E402

CONFIG = PurifyConfig(max_new_tokens=4, batch_size=4, shard_size=6, top_k=8)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "world"
    config = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=2)
    synthesize(out, config, progress=False)
    return out


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> Path:
    return save_tiny("llava", tmp_path_factory.mktemp("teacher") / "llava")


@pytest.fixture(scope="module")
def run(world, llava, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("teacher") / "targets"
    meta = build_targets(llava, world, out, CONFIG, progress=False)
    return out, meta


def _shard_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*"))}


# --- config and samples -----------------------------------------------------------------------------


def test_config_defaults_and_validation():
    config = PurifyConfig()
    assert (config.noise_step, config.cd_alpha, config.cd_beta, config.adaptive) == (500, 1.0, 0.1, True)
    assert (config.confidence, config.flag_tau, config.top_k, config.batch_size) == ("max_prob", 0.5, 32, 16)
    assert (config.max_new_tokens, config.shard_size, config.max_samples, config.seed) == (48, 256, 0, 0)
    assert (config.dtype, config.device, config.noise_draws) == ("float32", "cpu", 1)
    PurifyConfig(dtype="bfloat16", device="cuda:0")  # accelerators are a config choice
    for field, bad in [
        ("noise_step", 1000),
        ("noise_step", 2.5),
        ("noise_draws", 0),
        ("noise_draws", 1.5),
        ("cd_alpha", -0.1),
        ("cd_beta", 1.5),
        ("adaptive", "yes"),
        ("confidence", "margin"),
        ("flag_tau", 2),
        ("top_k", 0),
        ("batch_size", True),
        ("shard_size", 0),
        ("max_samples", -1),
        ("dtype", "float64"),
        ("device", "gpu"),
    ]:
        with pytest.raises(ConfigError, match=f"purify.{field}"):
            PurifyConfig(**{field: bad})
    with pytest.raises(ConfigError, match="purify.cd_gamma"):
        config_from_dict(PurifyConfig, {"cd_gamma": 1}, "purify")


def test_samples_are_every_human_turn_with_stable_ids(world):
    records = json.loads((world / "seed" / "instructions.json").read_text())
    samples = load_samples(world)
    assert len(samples) == sum(len(r["conversations"]) for r in records)
    first = records[0]
    assert samples[0].sample_id == f"{first['id']}:0" and samples[1].sample_id == f"{first['id']}:1"
    assert samples[0].image == first["image"]
    assert samples[0].prompt == first["conversations"][0]["value"].replace("<image>", "").strip()
    assert all("<image>" not in s.prompt for s in samples)
    assert load_samples(world, max_samples=3) == samples[:3]


# --- the stage ----------------------------------------------------------------------------------------


def test_manifest_records_hashes_every_param_and_counts(run, world, llava):
    out, meta = run
    manifest = read_manifest(out)  # verifies every shard's sha256
    # how the run went (seconds, processes, reused shards) is returned but not written
    run_only = {"seconds", "processes"}
    assert manifest.meta == {
        **{k: v for k, v in meta.items() if k not in run_only},
        "counts": {k: v for k, v in meta["counts"].items() if k != "reused_shards"},
    }
    assert meta["seconds"] > 0 and meta["processes"] == 1 and meta["counts"]["reused_shards"] == 0
    assert meta["model_hash"] == content_hash(llava)
    assert meta["data_hash"] == data_hash(world)
    assert meta["config"] == dataclasses.asdict(CONFIG)
    counts = meta["counts"]
    assert counts["instructions"] == len(load_samples(world)) == 16
    assert counts["shards"] == len(manifest.shards) == 3  # 16 samples, 6 per shard
    assert counts["samples"] + counts["skipped_responses"] == 16
    assert counts["samples"] == manifest.num_samples and counts["tokens"] == manifest.num_tokens > 0
    confidence = torch.cat([read_shard(e.path)[0].extra["confidence"] for e in manifest.shards])
    assert meta["flagged_share"] == pytest.approx(float((confidence < CONFIG.flag_tau).float().mean()))
    assert meta["seconds"] > 0


def test_shards_hold_sparse_targets_only(run, llava):
    out, _ = run
    vocab = load_tiny(llava)[0].config.text_config.vocab_size
    assert CONFIG.top_k < vocab
    for path in out.glob("shard-*.safetensors"):
        shard, ids = read_shard(path)
        tensors = [shard.targets.indices, shard.targets.log_probs, shard.targets.tail_mass, shard.offsets]
        tensors += list(shard.extra.values())
        assert all(vocab not in t.shape for t in tensors)
        assert shard.targets.indices.shape[1] == CONFIG.top_k
        assert shard.targets.indices.dtype == torch.int32 and shard.targets.log_probs.dtype == torch.float16
        assert read_sidecar(path)["samples"] and [s["id"] for s in read_sidecar(path)["samples"]] == ids


def _two_forwards(model, processor, world, sample: dict):
    """A sidecar sample's (clean logits, noised logits, labels) by two plain forwards (noise step 500)."""
    image = open_image(world / "images" / "seed" / sample["image"])
    batch = build_batch(processor, [image], [sample["prompt"]], [sample["response"]])
    labels = batch.pop("labels")[0]
    noised = add_diffusion_noise(batch["pixel_values"], 500, seeds=[sample_seed(sample["id"], 0)])
    with torch.no_grad():
        clean_logits = model(**batch).logits[0]
        noised_logits = model(**{**batch, "pixel_values": noised}).logits[0]
    return clean_logits, noised_logits, labels


def test_targets_equal_a_separate_clean_and_noised_pass(run, world, llava):
    """The 2B batch, the shift and the response masking, checked against two plain forwards."""
    out, _ = run
    model, processor = load_tiny(llava)
    path = out / "shard-00001.safetensors"
    shard, _ = read_shard(path)
    sample = read_sidecar(path)["samples"][1]
    clean_logits, noised_logits, labels = _two_forwards(model, processor, world, sample)
    targets = (labels != IGNORE_INDEX).nonzero().squeeze(1)  # positions of response tokens
    assert labels[: targets[0]].eq(IGNORE_INDEX).all() and len(targets) > 0
    log_probs, support = purify_logits(clean_logits[targets - 1], noised_logits[targets - 1], 1.0, 0.1)
    expected = sparsify_targets(log_probs, support, CONFIG.top_k)
    stored = shard[1]
    assert torch.equal(shard.extra_for("response_ids", 1), labels[targets])
    vocab = clean_logits.shape[-1]
    want, want_mask = densify(expected, vocab)
    got, got_mask = densify(stored, vocab)
    assert torch.equal(got_mask, want_mask)
    assert torch.allclose(got[got_mask], want[want_mask], atol=2e-3)
    assert torch.allclose(stored.tail_mass, expected.tail_mass, atol=1e-5)
    decoded = processor.tokenizer.decode(labels[targets], skip_special_tokens=True)
    assert decoded.strip() == sample["response"]


def test_same_run_twice_gives_identical_bytes(run, world, llava, tmp_path):
    out, _ = run
    build_targets(llava, world, tmp_path / "again", CONFIG, progress=False)
    assert _shard_files(tmp_path / "again") == _shard_files(out)


def test_no_label_leak(run, world, llava, tmp_path):
    """Answers and labels of every other split are changed: the targets do not move by a byte."""
    out, meta = run
    changed = tmp_path / "world"
    shutil.copytree(world, changed)
    conversations = json.loads((changed / "train" / "conversations.json").read_text())
    for record in conversations:
        for turn in record["conversations"]:
            if turn["from"] == "gpt":
                turn["value"] = "banana"
    (changed / "train" / "conversations.json").write_text(json.dumps(conversations))
    for pope in (changed / "pope").glob("*.json"):
        rows = [json.loads(line) for line in pope.read_text().splitlines() if line.strip()]
        for row in rows:
            row["label"] = "no" if row["label"] == "yes" else "yes"
        pope.write_text("".join(json.dumps(row) + "\n" for row in rows))
    mme_files = list((changed / "mme").glob("*/*.txt"))
    assert mme_files
    for txt in mme_files:
        lines = [line.split("\t") for line in txt.read_text().splitlines()]
        txt.write_text("".join(f"{q}\t{'No' if a == 'Yes' else 'Yes'}\n" for q, a in lines))
    (changed / "annotations.json").unlink()
    new_meta = build_targets(llava, changed, tmp_path / "targets", CONFIG, progress=False)
    assert new_meta["data_hash"] == meta["data_hash"]
    assert _shard_files(tmp_path / "targets") == _shard_files(out)


def test_resume_after_losing_the_last_shard(run, world, llava, tmp_path, monkeypatch):
    out, _ = run
    copy = tmp_path / "targets"
    shutil.copytree(out, copy)
    (copy / "shard-00002.safetensors").unlink()
    generated: list[str] = []
    import seed.model.generate

    answer = seed.model.generate.answer_batch

    def counting(model, processor, images, questions, *args, **kwargs):
        generated.extend(questions)
        return answer(model, processor, images, questions, *args, **kwargs)

    monkeypatch.setattr(seed.model.generate, "answer_batch", counting)
    meta = build_targets(llava, world, copy, CONFIG, progress=False)
    assert meta["counts"]["reused_shards"] == 2
    assert len(generated) == 16 - 2 * CONFIG.shard_size  # only the lost shard's samples
    assert _shard_files(copy) == _shard_files(out)
    assert read_manifest(copy).num_samples == read_manifest(out).num_samples


def test_changed_config_recomputes_and_drops_stale_shards(run, world, llava, tmp_path):
    out, _ = run
    copy = tmp_path / "targets"
    shutil.copytree(out, copy)
    config = dataclasses.replace(CONFIG, cd_alpha=2.0, shard_size=8)
    meta = build_targets(llava, world, copy, config, progress=False)
    assert meta["counts"]["reused_shards"] == 0 and meta["counts"]["shards"] == 2
    assert sorted(p.name for p in copy.glob("shard-*.safetensors")) == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ]
    assert read_sidecar(copy / "shard-00000.safetensors")["run"]["config"]["cd_alpha"] == 2.0


def test_empty_responses_are_skipped_and_counted(world, llava, tmp_path, monkeypatch):
    import seed.model.generate

    answer = seed.model.generate.answer_batch

    def some_empty(model, processor, images, questions, *args, **kwargs):
        answers = answer(model, processor, images, questions, *args, **kwargs)
        return ["  " if i == 0 else a for i, a in enumerate(answers)]

    monkeypatch.setattr(seed.model.generate, "answer_batch", some_empty)
    config = dataclasses.replace(CONFIG, max_samples=5)
    meta = build_targets(llava, world, tmp_path / "targets", config, progress=False)
    assert meta["counts"]["skipped_responses"] == 2  # the first of each generation batch (4 + 1)
    assert meta["counts"]["samples"] == 3
    sidecar = read_sidecar(tmp_path / "targets" / "shard-00000.safetensors")
    samples = load_samples(world)
    assert sidecar["skipped"] == [samples[0].sample_id, samples[4].sample_id]
    assert all(s["response"] for s in sidecar["samples"])


@pytest.mark.skipif(not forked.gloo_available(), reason="needs fork")
def test_sigkill_mid_run_then_rerun_resumes_to_the_same_targets(world, llava, tmp_path):
    """Kill a real purify run with SIGKILL once its first shard is on disk; the rerun reuses what was done."""
    config = dataclasses.replace(CONFIG, shard_size=1)  # 16 shards
    reference = tmp_path / "reference"
    build_targets(llava, world, reference, config, progress=False)
    out = tmp_path / "targets"
    result = tmp_path / "child.json"
    child = forked.start(partial(build_targets, llava, world, out, config, progress=False), result, nice=10)
    first = out / "shard-00000.samples.json"  # written after its shard: the shard is complete
    forked.kill_when(child, result, first.exists)  # os.kill(pid, SIGKILL)
    assert not (out / "manifest.json").exists(), "the run finished before it was killed"
    (out / ".shard-00015.safetensors.x1y2.tmp").write_bytes(b"half a shard")  # as a kill mid-write leaves

    meta = build_targets(llava, world, out, config, progress=False)
    assert 1 <= meta["counts"]["reused_shards"] < 16
    assert targets_differences(reference, out) == []
    assert not list(out.glob(".*.tmp"))
    assert read_manifest(out).num_samples == read_manifest(reference).num_samples


def test_no_contrast_targets_are_the_clean_teacher_renormalised_on_the_plausible_set(world, llava, tmp_path):
    """seed_no_contrast (cd_alpha 0): the target is softmax(clean logits) restricted to V_t and renormalised."""
    config = dataclasses.replace(CONFIG, cd_alpha=0.0)
    out = tmp_path / "targets"
    build_targets(llava, world, out, config, progress=False)
    model, processor = load_tiny(llava)
    path = out / "shard-00001.safetensors"
    shard, _ = read_shard(path)
    sample = read_sidecar(path)["samples"][0]
    image = open_image(world / "images" / "seed" / sample["image"])
    batch = build_batch(processor, [image], [sample["prompt"]], [sample["response"]])
    labels = batch.pop("labels")[0]
    with torch.no_grad():
        clean = model(**batch).logits[0]
    positions = (labels != IGNORE_INDEX).nonzero().squeeze(1) - 1
    probs = clean[positions].float().softmax(-1)  # (tokens, vocab)
    plausible = probs >= config.cd_beta * probs.max(-1, keepdim=True).values
    expected = torch.where(plausible, probs, torch.zeros_like(probs))
    expected = expected / expected.sum(-1, keepdim=True)
    got, got_mask = densify(shard[0], clean.shape[-1])
    # top_k keeps at most 8 tokens; every stored token is plausible and carries its renormalised mass
    assert got_mask.any(-1).all() and (got_mask <= plausible).all()
    assert torch.allclose(got[got_mask].exp(), expected[got_mask], atol=2e-3)


def test_contrast_dir_replaces_the_noised_image(world, llava, tmp_path):
    """purify.contrast_dir: the contrast image is read from the folder (the oracle control), not noised."""
    from seed.world.redraw import render_oracle_seed_images

    oracle = tmp_path / "oracle"
    render_oracle_seed_images(world, oracle)
    config = dataclasses.replace(CONFIG, contrast_dir=str(oracle), max_samples=4)
    out = tmp_path / "targets"
    build_targets(llava, world, out, config, progress=False)
    model, processor = load_tiny(llava)
    path = out / "shard-00000.safetensors"
    shard, _ = read_shard(path)
    sample = read_sidecar(path)["samples"][0]
    clean_image = open_image(world / "images" / "seed" / sample["image"])
    oracle_image = open_image(oracle / sample["image"])
    batch = build_batch(processor, [clean_image], [sample["prompt"]], [sample["response"]])
    labels = batch.pop("labels")[0]
    contrast = build_batch(processor, [oracle_image], [sample["prompt"]], [sample["response"]])
    with torch.no_grad():
        clean = model(**batch).logits[0]
        other = model(**{**batch, "pixel_values": contrast["pixel_values"]}).logits[0]
    positions = (labels != IGNORE_INDEX).nonzero().squeeze(1) - 1
    log_probs, support = purify_logits(clean[positions], other[positions], 1.0, 0.1)
    want, want_mask = densify(sparsify_targets(log_probs, support, CONFIG.top_k), clean.shape[-1])
    got, got_mask = densify(shard[0], clean.shape[-1])
    assert torch.equal(got_mask, want_mask)
    assert torch.allclose(got[got_mask], want[want_mask], atol=2e-3)


def test_rate_centring_runs_with_a_contrast_image_and_moves_only_existence_targets(world, llava, tmp_path):
    """purify.contrast_dir with centre rate (the oracle control as `seed controls` runs it): the
    stage runs, and its targets differ from the uncentred run's on existence questions only."""
    from seed.model.margins import QUESTION_RE
    from seed.world.redraw import render_oracle_seed_images

    oracle = tmp_path / "oracle"
    render_oracle_seed_images(world, oracle)
    shards = {}
    for centre in ("none", "rate"):
        config = dataclasses.replace(
            CONFIG, contrast_dir=str(oracle), centre=centre, cd_alpha=3.0, max_samples=8
        )
        build_targets(llava, world, tmp_path / centre, config, progress=False)
        path = tmp_path / centre / "shard-00000.safetensors"
        shards[centre] = (read_shard(path)[0], read_sidecar(path)["samples"])
    assert [s["id"] for s in shards["none"][1]] == [s["id"] for s in shards["rate"][1]]
    moved = []
    for i, sample in enumerate(shards["none"][1]):
        a, b = shards["none"][0][i], shards["rate"][0][i]
        same = torch.equal(a.indices, b.indices) and torch.allclose(a.log_probs, b.log_probs)
        moved.append((bool(QUESTION_RE.match(sample["prompt"])), not same))
    assert any(asked and changed for asked, changed in moved)  # the shift reaches the targets
    assert not any(changed and not asked for asked, changed in moved)  # captions are untouched


def test_noise_draws_average_the_noised_logits_of_each_draw(run, world, llava, tmp_path):
    """purify.noise_draws = 2: the noised view is the mean of two noisings' logits (seeds 0 and 1)."""
    config = dataclasses.replace(CONFIG, noise_draws=2, max_samples=3)
    out = tmp_path / "targets"
    build_targets(llava, world, out, config, progress=False)
    model, processor = load_tiny(llava)
    path = out / "shard-00000.safetensors"
    shard, _ = read_shard(path)
    sample = read_sidecar(path)["samples"][2]
    image = open_image(world / "images" / "seed" / sample["image"])
    batch = build_batch(processor, [image], [sample["prompt"]], [sample["response"]])
    labels = batch.pop("labels")[0]
    with torch.no_grad():
        clean = model(**batch).logits[0]
        draws = [
            model(
                **{
                    **batch,
                    "pixel_values": add_diffusion_noise(
                        batch["pixel_values"], 500, seeds=[sample_seed(sample["id"], seed)]
                    ),
                }
            ).logits[0]
            for seed in (0, 1)
        ]
    positions = (labels != IGNORE_INDEX).nonzero().squeeze(1) - 1
    noised = (draws[0][positions] + draws[1][positions]) / 2
    log_probs, support = purify_logits(clean[positions], noised, 1.0, 0.1)
    want, want_mask = densify(sparsify_targets(log_probs, support, CONFIG.top_k), clean.shape[-1])
    got, got_mask = densify(shard[2], clean.shape[-1])
    assert torch.equal(got_mask, want_mask)
    assert torch.allclose(got[got_mask], want[want_mask], atol=2e-3)
    # the second draw changes the targets: they are not the one-draw run's
    one, _ = read_shard(run[0] / "shard-00000.safetensors")
    assert not torch.allclose(one[2].log_probs, shard[2].log_probs, atol=1e-3)


def test_noise_draws_with_another_contrast_image_is_a_config_error():
    with pytest.raises(ConfigError, match="purify.noise_draws"):
        PurifyConfig(contrast_dir="oracle", noise_draws=2)


def test_centred_contrast_lowers_the_noised_answer_margin_by_its_image_mean(run, world, llava, tmp_path):
    """``centre: image`` changes only the first token of existence questions, by the image's mean."""
    from seed.core.purify import shift_answer_margin
    from seed.model.generate import yes_no_token_ids
    from seed.model.margins import QUESTION_RE
    from seed.stages.purify import image_shifts

    config = dataclasses.replace(CONFIG, centre="image")
    out = tmp_path / "centred"
    build_targets(llava, world, out, config, progress=False)
    plain, _ = run
    model, processor = load_tiny(llava)
    shifts = image_shifts(model, processor, world, load_samples(world), config)
    assert shifts and all(QUESTION_RE.match(s.prompt) for s in load_samples(world) if s.sample_id in shifts)
    yes, no = yes_no_token_ids(processor)
    checked = 0
    for name in sorted(p.name for p in out.glob("shard-*.safetensors")):
        centred_shard, _ = read_shard(out / name)
        plain_shard, _ = read_shard(plain / name)
        samples = read_sidecar(out / name)["samples"]
        for i, sample in enumerate(samples):
            a, b = centred_shard[i], plain_shard[i]
            same_later = torch.equal(a.indices[1:], b.indices[1:]) and torch.equal(
                a.log_probs[1:], b.log_probs[1:]
            )
            assert same_later, sample["id"]  # only the first answer token can change
            if sample["id"] not in shifts:
                assert torch.equal(a.log_probs, b.log_probs), sample["id"]
                continue
            # the first token, recomputed by hand with the noised margin lowered by the image's mean
            clean_logits, noised_logits, labels = _two_forwards(model, processor, world, sample)
            first = int((labels != IGNORE_INDEX).nonzero()[0]) - 1
            shifted = shift_answer_margin(
                noised_logits[first : first + 1], torch.tensor([shifts[sample["id"]]]), yes, no
            )
            log_probs, support = purify_logits(clean_logits[first : first + 1], shifted, 1.0, 0.1)
            want, want_mask = densify(
                sparsify_targets(log_probs, support, CONFIG.top_k), clean_logits.shape[-1]
            )
            got, got_mask = densify(a, clean_logits.shape[-1])
            assert torch.equal(got_mask[:1], want_mask) and torch.allclose(
                got[:1][got_mask[:1]], want[want_mask], atol=2e-3
            )
            checked += 1
    assert checked >= 3


def test_split_centring_and_centre_weight_scale_the_image_means(world, llava):
    """``centre: split`` shifts every question by the mean over all of them, and
    ``centre_weight`` scales the shift; both computed by hand from the per-image shifts."""
    from seed.stages.purify import image_shifts

    model, processor = load_tiny(llava)
    samples = load_samples(world)
    by_image = image_shifts(model, processor, world, samples, dataclasses.replace(CONFIG, centre="image"))
    split = image_shifts(model, processor, world, samples, dataclasses.replace(CONFIG, centre="split"))
    half = image_shifts(
        model, processor, world, samples, dataclasses.replace(CONFIG, centre="image", centre_weight=0.5)
    )
    assert set(split) == set(by_image) == set(half) and len(by_image) >= 3
    # each question carries its image's mean, so their average is the mean over all questions
    want = sum(by_image.values()) / len(by_image)
    assert all(v == pytest.approx(want, abs=1e-5) for v in split.values())
    assert len(set(round(v, 5) for v in by_image.values())) > 1  # images differ, so the test can fail
    assert all(half[k] == pytest.approx(0.5 * by_image[k], abs=1e-6) for k in by_image)


def test_rate_centring_keeps_the_splits_yes_rate_through_the_contrast(world, llava):
    """``centre: rate`` gives every existence question one shift: after it, the two-answer targets'
    mean P(yes) over the split equals the clean view's mean (both recomputed here from the margins)."""
    from seed.core.purify import answer_rate_shift
    from seed.model.generate import open_image
    from seed.model.margins import QUESTION_RE, first_token_margins
    from seed.stages.purify import image_shifts

    model, processor = load_tiny(llava)
    samples = load_samples(world)
    config = dataclasses.replace(CONFIG, centre="rate", cd_alpha=3.0)
    shifts = image_shifts(model, processor, world, samples, config)
    asked = [s for s in samples if QUESTION_RE.match(s.prompt)]
    assert set(shifts) == {s.sample_id for s in asked} and len(set(shifts.values())) == 1
    images = [open_image(world / "images" / "seed" / s.image) for s in asked]
    args = ([s.prompt for s in asked], [s.sample_id for s in asked], config.noise_step, config.seed)
    clean, noised = first_token_margins(model, processor, images, *args, batch_size=config.batch_size)
    clean, noised = torch.tensor(clean), torch.tensor(noised)
    shift = next(iter(shifts.values()))
    assert shift == pytest.approx(answer_rate_shift(clean, noised, 3.0, 0.1), abs=1e-4)
    two = lambda m: torch.stack([m, torch.zeros_like(m)], -1)[None]  # noqa: E731
    target, _ = purify_logits(two(clean), two(noised - shift), 3.0, 0.1)
    assert target[0, :, 0].exp().mean().item() == pytest.approx(torch.sigmoid(clean).mean().item(), abs=1e-3)
    half = image_shifts(model, processor, world, samples, dataclasses.replace(config, centre_weight=0.5))
    assert all(half[k] == pytest.approx(0.5 * shift, abs=1e-6) for k in shifts)


@pytest.mark.parametrize("weight", [0, -0.5, 1.5, "half"])
def test_centre_weight_outside_zero_to_one_is_a_config_error(weight):
    with pytest.raises(ConfigError, match="purify.centre_weight"):
        PurifyConfig(centre="image", centre_weight=weight)


def test_rate_centring_with_a_contrast_image_reads_its_margins(world, llava, tmp_path):
    """``centre: rate`` with ``contrast_dir`` (the oracle control): the shift is read on the contrast
    images' margins, unnoised, in place of the noised view's, and differs from the noised view's shift."""
    from seed.core.purify import answer_rate_shift
    from seed.model.generate import open_image
    from seed.model.margins import QUESTION_RE, first_token_margins
    from seed.stages.purify import image_shifts
    from seed.world.redraw import render_oracle_seed_images

    oracle = tmp_path / "oracle"
    render_oracle_seed_images(world, oracle)
    model, processor = load_tiny(llava)
    samples = load_samples(world)
    config = dataclasses.replace(CONFIG, centre="rate", cd_alpha=3.0, contrast_dir=str(oracle))
    shifts = image_shifts(model, processor, world, samples, config)
    asked = [s for s in samples if QUESTION_RE.match(s.prompt)]
    assert set(shifts) == {s.sample_id for s in asked} and len(set(shifts.values())) == 1
    args = ([s.prompt for s in asked], [s.sample_id for s in asked])
    clean, _ = first_token_margins(
        model, processor, [open_image(world / "images" / "seed" / s.image) for s in asked], *args
    )
    other, _ = first_token_margins(model, processor, [open_image(oracle / s.image) for s in asked], *args)
    shift = next(iter(shifts.values()))
    assert shift == pytest.approx(
        answer_rate_shift(torch.tensor(clean), torch.tensor(other), 3.0, 0.1), abs=1e-4
    )
    noised = image_shifts(model, processor, world, samples, dataclasses.replace(config, contrast_dir=""))
    assert next(iter(noised.values())) != pytest.approx(shift, abs=1e-4)  # the test can tell the views apart
