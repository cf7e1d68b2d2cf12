"""Search for a base model that sees objects: pretraining variants with checkpoints along the way.

Issue 3 needs a base model whose errors SEED can remove: one that has evidence of which scene-typical
objects are present and still says Yes to absent ones. This script trains the embedded model the way
``seed pretrain`` does (same data encoding, optimiser and schedule) and adds what that stage does not:

- checkpoints at chosen steps (``--save 400,800``), each a loadable model folder ``OUT-<step>``, to
  see whether evidence grows with training (probe each with ``bench/prior_probe.py --model OUT-<step>``);
- a vision stage 0 (``--vision-steps``) as in ``seed/base/vision_pretrain.py``, optionally *aligned*
  (``--align``: a category's score is the cosine between the projected patch feature and the
  category name's word embedding, so tower, projector and embeddings learn one shared space, the way
  CLIP aligns image and text), optionally with the tower frozen afterwards (``--freeze-tower``, as
  LLaVA-1.5 keeps CLIP frozen);
- the tower-only AUC of stage 0 on POPE questions: does the vision feature itself rank present above
  absent objects? (A diagnostic on evaluation images; nothing is trained on them.)

    python bench/base_model_search.py --out /tmp/m --steps 800 --save 400,800 [--data W]
        [--vision-steps 1500 [--align] [--freeze-tower]] [--threads 1]

LOG.md's base-model search tables come from this script and ``bench/prior_probe.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch
from tqdm import tqdm

from seed.base.encoding import collate, encode_conversations, load_pixels
from seed.base.modeling import build_model, build_processor, build_tokenizer
from seed.base.vision_pretrain import aligned_max_logits, object_labels, patch_max_logits
from seed.eval.pope import ranking_auc
from seed.files.conversation import load_conversations, to_messages
from seed.stages.pretrain import PretrainConfig, collect_texts, lr_at


def vision_stage(model, tokenizer, pixels, labels, categories, args, feature_layer):
    """Stage 0: multi-label object recognition on the training images; returns the scoring function.

    The same objective as ``seed.base.vision_pretrain.pretrain_vision`` (same scores), kept here because the
    tower-only diagnostic needs the trained head, and because this script's random streams (batch
    sampler seeded 1, head drawn from the global generator) are the ones that produced the LOG rows.
    """
    tower = model.model.vision_tower
    hidden = tower.config.hidden_size
    head = torch.nn.Linear(hidden, labels.shape[1])
    torch.nn.init.normal_(head.weight, 0.0, hidden**-0.5)
    head.bias.data.fill_(-2.0)
    params = list(tower.parameters()) + list(head.parameters())
    if args.align:
        projector, embeddings = model.model.multi_modal_projector, model.get_input_embeddings()
        word_ids = torch.tensor([tokenizer.convert_tokens_to_ids(c) for c in categories])
        if (word_ids == tokenizer.unk_token_id).any():
            raise SystemExit("--align needs every category name in the vocabulary")
        scale = torch.nn.Parameter(torch.tensor(10.0))
        params += list(projector.parameters()) + list(embeddings.parameters()) + [scale]

        def score(f):
            return aligned_max_logits(projector(f), embeddings.weight[word_ids], scale, head.bias)
    else:

        def score(f):
            return patch_max_logits(f, head.weight, head.bias)

    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(1)
    tower.train()
    ema = None
    for step in range(args.vision_steps):
        idx = torch.randint(len(pixels), (64,), generator=generator)
        feats = tower(pixels[idx], output_hidden_states=True).hidden_states[feature_layer][:, 1:]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(score(feats), labels[idx])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * min(1.0, (step + 1) / max(1, args.vision_steps // 10))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 250 == 0 or step == args.vision_steps - 1:
            print(f"vision step {step} loss {ema:.4f}", flush=True)
    tower.eval()
    return score


def tower_only_auc(model, processor, data: Path, score, categories, feature_layer, n: int) -> None:
    """Print the AUC of stage 0's own score for the asked category on the first n POPE questions."""
    from seed.eval.pope import load_pope_questions
    from seed.model.generate import open_image

    for split in ("adversarial", "popular", "random"):
        questions = load_pope_questions(next((data / "pope").glob(f"*_pope_{split}.json")))[:n]
        images = [open_image(data / "images" / "eval" / q["image"]) for q in questions]
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
            logits = score(hidden[feature_layer][:, 1:])
        asked = [re.search(r"Is there an? (.+?) in the image", q["text"]).group(1) for q in questions]
        scores = torch.tensor([logits[i, categories.index(name)].item() for i, name in enumerate(asked)])
        positive = torch.tensor([q["label"] == "yes" for q in questions])
        print(f"tower-only AUC {split} {ranking_auc(scores, positive):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data")
    parser.add_argument("--out", required=True, help="checkpoints go to OUT-<step>")
    parser.add_argument(
        "--steps", type=int, default=800, help="LLaVA-stage steps (cosine schedule over these)"
    )
    parser.add_argument("--save", default="400,800", help="steps after which to save a checkpoint")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vision-steps", type=int, default=0)
    parser.add_argument("--align", action="store_true")
    parser.add_argument("--freeze-tower", action="store_true")
    parser.add_argument("--n", type=int, default=900, help="POPE questions per split for the tower-only AUC")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = PretrainConfig(steps=args.steps, lr=args.lr)
    data = Path(args.data)
    records = load_conversations(data / "train" / "conversations.json", require_answers=True)
    tokenizer = build_tokenizer(collect_texts(data))
    processor = build_processor(tokenizer, config.model)
    model = build_model(config.model, tokenizer, seed=config.seed)
    encoded = encode_conversations(
        tokenizer, [to_messages(r["conversations"]) for r in records], config.model.num_image_tokens
    )
    pixels = load_pixels(processor, [data / "images" / "train" / r["image"] for r in records])
    layer = config.model.vision_feature_layer
    if args.vision_steps:
        labels, categories = object_labels(data / "annotations.json", [r["image"] for r in records])
        score = vision_stage(model, tokenizer, pixels, labels, categories, args, layer)
        tower_only_auc(model, processor, data, score, categories, layer, args.n)
        if args.freeze_tower:
            for p in model.model.vision_tower.parameters():
                p.requires_grad_(False)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    saves = {int(s) for s in args.save.split(",")}
    generator = torch.Generator().manual_seed(config.seed)
    order, cursor, ema = torch.randperm(len(encoded), generator=generator), 0, None
    model.train()
    start = time.perf_counter()
    for step in tqdm(range(config.steps), desc="llava stage", mininterval=30):
        if cursor + config.batch_size > len(order):
            order, cursor = torch.randperm(len(encoded), generator=generator), 0
        idx = order[cursor : cursor + config.batch_size].tolist()
        cursor += config.batch_size
        input_ids, targets, attention = collate([encoded[i] for i in idx], tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        out = model(input_ids=input_ids, attention_mask=attention, pixel_values=pixels[idx], labels=targets)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema = out.loss.item() if ema is None else 0.95 * ema + 0.05 * out.loss.item()
        if step + 1 in saves:
            folder = Path(f"{args.out}-{step + 1}")
            model.eval()
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            (folder / "search.json").write_text(
                json.dumps({**vars(args), "step": step + 1, "loss_ema": ema}) + "\n"
            )
            model.train()
            print(f"saved {folder} loss {ema:.4f} after {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
