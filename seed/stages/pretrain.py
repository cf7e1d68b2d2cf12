"""Stage `pretrain`: train the embedded base model on a world's supervised split.

The base model is what SEED later improves, so it is trained the way LLaVA-style models are: next
token prediction on the assistant turns of multi-turn image conversations (prompt and image tokens
carry no loss). Its hallucinations are not put there by hand; they come from the data (scene-object
co-occurrence, canonical colours, small and hidden objects, captions that name absent objects, and
training negatives that are rarely plausible objects; see docs/world.md).

The run is seeded and takes a fixed number of optimiser steps, so two runs with the same data and
config give the same weights on the same machine.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from seed.base.encoding import collate, encode_conversations, load_pixels
from seed.base.modeling import ModelConfig
from seed.errors import ConfigError, DataError
from seed.files.conversation import load_conversations, to_messages
from seed.params import check_range, check_runtime

if TYPE_CHECKING:
    from seed.stages import StagePaths

SECTION = "pretrain"


@dataclass
class PretrainConfig:
    """Hyperparameters of stage `pretrain` (params.yaml section ``pretrain``).

    The curriculum grounds first and biases second, as real models are pretrained broadly and then
    tuned on biased instruction data: with ``grounding_steps`` > 0, stage 0 and the first
    ``grounding_steps`` of the ``steps`` LLaVA steps read a *grounding world*, the data folder's own
    world drawn again with ``grounding_seed``, ``grounding_cooccurrence`` (0: objects ignore the scene)
    and ``grounding_hard_negative_rate``; the rest read the data folder's training split, or with
    ``bias_world`` a *bias world*: the data folder's world drawn again with ``bias_seed`` and
    ``bias_cooccurrence`` (a scene prior stronger than the test world's, as instruction data is more
    biased than the benchmarks). With
    ``degraded_rate`` > 0 that share of every LLaVA batch is noised at a uniform random diffusion step
    (its text unchanged), as real photos are blurred or dark yet captioned by what they show: the
    model learns to answer from context when it cannot see, which is the prior the noised contrast
    view isolates.
    """

    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 40
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 0  # 0: torch's default
    vision_steps: int = 0  # stage 0: object recognition on the training images (seed/base/vision_pretrain.py)
    vision_lr: float = 1e-3
    vision_batch_size: int = 64
    vision_align: bool = False  # stage 0 scores categories by cosine to their name's word embedding
    vision_schedule: str = "constant"  # stage 0's learning rate after warm-up: constant or cosine decay
    vision_images: int = 0  # > 0: stage 0 reads this many freshly drawn images instead of the training files
    degraded_rate: float = 0.0  # share of each LLaVA-stage batch noised at a random step, text unchanged
    grounding_steps: int = 0  # the first LLaVA steps (and stage 0) on a world whose objects ignore the scene
    grounding_seed: int = 1000  # world seed of that grounding world
    grounding_cooccurrence: float = 0.0
    grounding_hard_negative_rate: float = 0.5
    bias_world: bool = False  # the LLaVA steps after grounding read the world drawn again, below
    bias_seed: int = 2000  # world seed of that bias world
    bias_cooccurrence: float = 0.95  # its scene-object co-occurrence (data's own: params `world`)
    freeze_vision: bool = False  # keep the vision tower of stage 0 fixed in the LLaVA stage (as LLaVA-1.5)
    freeze_projector: bool = False  # keep stage 0's projector fixed too (vision_align trains it there)
    loss_mean: str = "token"  # LLaVA loss: mean over answer tokens, or "turn" (seed/core/lm_loss.py)
    version: str = "dev"  # the checkpoint's label in its model card (README.md of the model folder)
    device: str = "cpu"  # where training runs ("cuda" for a long pretraining on a GPU)
    dtype: str = "float32"  # "bfloat16": autocast on the device; the weights stay float32
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        check_range(SECTION, "steps", self.steps, lo=1)
        check_range(SECTION, "batch_size", self.batch_size, lo=1)
        check_range(SECTION, "lr", self.lr, lo=0, hi=1, lo_open=True)
        check_range(SECTION, "warmup_steps", self.warmup_steps, lo=0)
        check_range(SECTION, "weight_decay", self.weight_decay, lo=0)
        check_range(SECTION, "grad_clip", self.grad_clip, lo=0, lo_open=True)
        check_range(SECTION, "threads", self.threads, lo=0)
        check_range(SECTION, "vision_steps", self.vision_steps, lo=0)
        check_range(SECTION, "vision_lr", self.vision_lr, lo=0, hi=1, lo_open=True)
        check_range(SECTION, "vision_batch_size", self.vision_batch_size, lo=1)
        check_range(SECTION, "vision_images", self.vision_images, lo=0)
        if self.vision_schedule not in ("constant", "cosine"):
            raise ConfigError(
                f"{SECTION}.vision_schedule = {self.vision_schedule!r} must be constant or cosine"
            )
        if self.loss_mean not in ("token", "turn"):
            raise ConfigError(f"{SECTION}.loss_mean = {self.loss_mean!r} must be token or turn")
        check_range(SECTION, "degraded_rate", self.degraded_rate, lo=0, hi=1)
        check_range(SECTION, "grounding_steps", self.grounding_steps, lo=0, hi=self.steps)
        check_range(SECTION, "grounding_seed", self.grounding_seed, lo=0)
        check_range(SECTION, "grounding_cooccurrence", self.grounding_cooccurrence, lo=0, hi=1)
        check_range(SECTION, "grounding_hard_negative_rate", self.grounding_hard_negative_rate, lo=0, hi=1)
        check_range(SECTION, "bias_seed", self.bias_seed, lo=0)
        check_range(SECTION, "bias_cooccurrence", self.bias_cooccurrence, lo=0, hi=1)
        for key in ("vision_align", "freeze_vision", "freeze_projector", "bias_world"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{SECTION}.{key} = {getattr(self, key)!r} must be true or false")
        check_runtime(SECTION, self.dtype, self.device)
        if self.dtype == "float16":
            raise ConfigError(f"{SECTION}.dtype = 'float16' is not supported for training; use 'bfloat16'")


def collect_texts(data_dir: Path) -> list[str]:
    """Every text of a world that the model may read or write: its vocabulary source.

    Only words are taken from the evaluation files (their question phrasing), never labels.
    """
    from seed.eval.pope import POPE_PROMPT_SUFFIX, read_jsonl_objects

    texts = [POPE_PROMPT_SUFFIX, "Please describe this image in detail."]
    for name, answers in (("train/conversations.json", True), ("seed/instructions.json", False)):
        path = data_dir / name
        if path.exists():
            for record in load_conversations(path, require_answers=answers):
                texts.extend(turn["value"] for turn in record["conversations"])
    for pope_file in sorted((data_dir / "pope").glob("*.json")):
        for _, obj in read_jsonl_objects(pope_file):  # DataError (file, line) on a malformed line
            if isinstance(obj.get("text"), str):
                texts.append(obj["text"])
    for txt in sorted((data_dir / "mme").glob("*/*.txt")):
        try:
            lines = txt.read_bytes().decode("utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(txt, f"not UTF-8 text (byte {exc.start})") from exc
        texts.extend(line.split("\t")[0] for line in lines)
    words = {"Yes", "No", "yes", "no"}
    texts.append(" ".join(sorted(words)))
    return texts


def grounding_world(data_dir: Path, out_dir: Path, config: PretrainConfig) -> Path:
    """The curriculum's grounding world: the data folder's world drawn again with the grounding
    seed, co-occurrence and hard-negative rate; training split only. Returns ``out_dir``."""
    return _training_world(
        data_dir,
        out_dir,
        seed=config.grounding_seed,
        cooccurrence=config.grounding_cooccurrence,
        hard_negative_rate=config.grounding_hard_negative_rate,
    )


def bias_world(data_dir: Path, out_dir: Path, config: PretrainConfig) -> Path:
    """The curriculum's bias world: the data folder's world drawn again with the bias seed and
    co-occurrence (its hard-negative rate kept); training split only. Returns ``out_dir``."""
    return _training_world(data_dir, out_dir, seed=config.bias_seed, cooccurrence=config.bias_cooccurrence)


def _training_world(data_dir: Path, out_dir: Path, **overrides) -> Path:
    from seed.world.redraw import redraw_world

    splits = {"n_seed": 0, "n_pope_images": 0, "n_mme_images": 0, "n_chair_images": 0}
    return redraw_world(data_dir, out_dir, **overrides, **splits)


def fresh_vision_images(data_dir: Path, processor, config: PretrainConfig, chunk: int = 4096):
    """Stage 0's images when ``vision_images`` > 0: the grounding world's recipe (the data folder's
    world with the grounding seed and co-occurrence) drawn in memory (`seed.world.redraw.draw_scene_images`).

    Returns ``(pixels, labels)``: (vision_images, 3, H, W) normalised float32 and (vision_images,
    categories) float multi-hot, columns in annotation-id order. So many fresh scenes that the tower
    sees each about once: it cannot memorise them, as it memorises a fixed set of a few thousand.
    """
    import dataclasses

    import torch
    from tqdm import tqdm

    from seed.world.redraw import draw_scene_images, world_config

    world = dataclasses.replace(
        world_config(data_dir), seed=config.grounding_seed, cooccurrence=config.grounding_cooccurrence
    )
    pixels, labels = [], []
    for start in tqdm(range(0, config.vision_images, chunk), desc="draw stage-0 images", leave=False):
        count = min(chunk, config.vision_images - start)
        images, hot = draw_scene_images(world, count, start)
        pixels.append(processor.image_processor(list(images), return_tensors="pt")["pixel_values"])
        labels.append(torch.from_numpy(hot).float())
    return torch.cat(pixels).to(config.device), torch.cat(labels)


def degrade(pixels, rate: float, generator):
    """A copy of (batch, 3, H, W) ``pixels`` with a share ``rate`` of the images, drawn by ``generator``,
    noised at a uniform random diffusion step in [0, 999] (`seed.core.noise.add_diffusion_noise`)."""
    import torch

    from seed.core.noise import DEFAULT_NUM_STEPS, add_diffusion_noise

    chosen = (torch.rand(pixels.shape[0], generator=generator) < rate).nonzero().flatten().tolist()
    if not chosen:
        return pixels
    out = pixels.clone()
    for i in chosen:
        step = int(torch.randint(DEFAULT_NUM_STEPS, (1,), generator=generator))
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        out[i : i + 1] = add_diffusion_noise(pixels[i : i + 1], step, seeds=[seed])
    return out


def lr_at(step: int, config: PretrainConfig) -> float:
    """Linear warm-up then cosine decay to 10% of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def pretrain(
    data_dir: str | Path, out_dir: str | Path, config: PretrainConfig, progress: bool = True
) -> dict:
    """Build tokenizer, processor and model for the world in ``data_dir``, train, save to ``out_dir``.

    The model folder is written to a temporary sibling and renamed into place, so an interrupted run
    never leaves a half-saved model. Returns a summary (steps, final loss, seconds, parameters).
    """
    import torch
    from tqdm import tqdm

    from seed.base.modeling import build_model, build_processor, build_tokenizer, count_parameters
    from seed.core.lm_loss import turn_mean_nll
    from seed.files.base_card import CARD, render_base_card, weights_sha256

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    scratch = None
    worlds = [data_dir]
    if config.grounding_steps or config.bias_world:
        import tempfile

        scratch = tempfile.TemporaryDirectory(prefix="seed-pretrain-worlds-")
    if config.bias_world:
        worlds = [bias_world(data_dir, Path(scratch.name) / "bias", config)]
    if config.grounding_steps:
        worlds.insert(0, grounding_world(data_dir, Path(scratch.name) / "world", config))
    texts = collect_texts(data_dir)
    for world in (w for w in worlds if w != data_dir):  # a redrawn world: its training answers too
        rows = load_conversations(world / "train" / "conversations.json", require_answers=True)
        texts += [turn["value"] for row in rows for turn in row["conversations"]]
    tokenizer = build_tokenizer(texts)
    processor = build_processor(tokenizer, config.model)
    model = build_model(config.model, tokenizer, seed=config.seed).to(config.device)
    n_img = config.model.num_image_tokens

    def load_world(world: Path) -> tuple[list[dict], list, object]:
        rows = load_conversations(world / "train" / "conversations.json", require_answers=True)
        encoded = encode_conversations(tokenizer, [to_messages(r["conversations"]) for r in rows], n_img)
        pixels = load_pixels(processor, [world / "images" / "train" / r["image"] for r in rows])
        return rows, encoded, pixels.to(config.device)

    phases = [load_world(world) for world in worlds]  # [grounding world,] the data folder
    records = phases[-1][0]
    vision_rows, _, vision_pixels = phases[0]
    vision_history: list[dict] = []
    if config.vision_steps:
        from seed.base.vision_pretrain import object_labels, pretrain_vision

        labels, categories = object_labels(worlds[0] / "annotations.json", [r["image"] for r in vision_rows])
        if config.vision_images:
            vision_pixels, labels = fresh_vision_images(data_dir, processor, config)
        labels = labels.to(config.device)
        word_ids = None
        if config.vision_align:
            word_ids = [tokenizer.convert_tokens_to_ids(name) for name in categories]
            unknown = [n for n, i in zip(categories, word_ids, strict=True) if i == tokenizer.unk_token_id]
            if unknown:
                raise DataError(
                    data_dir / "annotations.json", f"category names not in the vocabulary: {unknown}"
                )
        vision_history = pretrain_vision(
            model,
            vision_pixels,
            labels,
            steps=config.vision_steps,
            batch_size=config.vision_batch_size,
            lr=config.vision_lr,
            feature_layer=max(config.model.vision_feature_layer, -config.model.vision_layers),
            seed=config.seed,
            progress=progress,
            word_ids=word_ids,
            schedule=config.vision_schedule,
        )

    if config.freeze_vision:
        model.model.vision_tower.requires_grad_(False)
    if config.freeze_projector:
        model.model.multi_modal_projector.requires_grad_(False)
    generator = torch.Generator().manual_seed(config.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    pad_id = tokenizer.pad_token_id
    history: list[dict] = []
    model.train()
    start = time.perf_counter()
    degrade_generator = torch.Generator().manual_seed(config.seed + 1)
    _, encoded, pixels = phases[0]
    order = torch.randperm(len(encoded), generator=generator)
    cursor = 0
    bar = tqdm(range(config.steps), desc="pretrain", disable=not progress, dynamic_ncols=True)
    ema = None
    for step in bar:
        if config.grounding_steps and step == config.grounding_steps:  # the curriculum's second part
            _, encoded, pixels = phases[-1]
            cursor = len(order)  # a fresh permutation of the new data
        if cursor + config.batch_size > len(order):
            order = torch.randperm(len(encoded), generator=generator)
            cursor = 0
        idx = order[cursor : cursor + config.batch_size].tolist()
        cursor += config.batch_size
        input_ids, labels, attention = collate([encoded[i] for i in idx], pad_id)
        batch_pixels = pixels[idx]
        if config.degraded_rate:
            batch_pixels = degrade(batch_pixels, config.degraded_rate, degrade_generator)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        device = config.device
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=config.dtype == "bfloat16"):
            out = model(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                pixel_values=batch_pixels,
                labels=labels.to(device) if config.loss_mean == "token" else None,
            )
        loss_t = out.loss if config.loss_mean == "token" else turn_mean_nll(out.logits, labels.to(device))
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_t.item()
        ema = loss if ema is None else 0.95 * ema + 0.05 * loss
        history.append({"step": step, "loss": loss, "lr": lr_at(step, config)})
        bar.set_postfix(loss=f"{ema:.3f}")
    seconds = time.perf_counter() - start
    if scratch is not None:
        scratch.cleanup()
    model.to("cpu").eval()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    summary = {
        "steps": config.steps,
        "final_loss_ema": ema,
        "train_seconds": round(seconds, 1),
        "parameters": count_parameters(model),
        "vocab_size": len(tokenizer),
        "train_conversations": len(records),
        "vision_final_loss": vision_history[-1]["loss"] if vision_history else None,
        "config": asdict(config),
    }
    # The model folder holds nothing run-dependent (no timings): its content hash is a function of the
    # data, the config and the code, so a retrain with nothing changed gives the same folder.
    stable = {k: v for k, v in summary.items() if k != "train_seconds"}
    (tmp / "pretrain_summary.json").write_text(json.dumps(stable, indent=2) + "\n")
    (tmp / "pretrain_loss.json").write_text(json.dumps(history) + "\n")
    card = render_base_card(config, summary, data_dir, out_dir, weights_sha256(tmp), config.version)
    (tmp / CARD).write_text(card)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return summary


def run(paths: StagePaths, config: PretrainConfig, progress: bool = False) -> dict:
    """Train the embedded base model on ``paths.data`` into ``paths.base_model``."""
    return pretrain(paths.data, paths.base_model, config, progress=progress)
