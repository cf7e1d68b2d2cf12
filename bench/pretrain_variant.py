"""Pretraining variants that are experiments, not options yet: `seed pretrain` with one change.

    python bench/pretrain_variant.py --degraded-max-step 700 -- --data data --out /tmp/v4f ...

``--degraded-max-step S``: the degraded images of the LLaVA stage are noised at a uniform step in
[0, S) instead of [0, 999]. The question it asks: does training on heavily noised images with their
text unchanged teach the model to read objects out of the noise, so that the noised view SEED uses
(step 900) still holds them?

``--degraded-min-step S``: the degraded images are noised at a uniform step in [S, max) instead of
[0, max): a model that sees either clean images or heavily noised ones, never half-visible objects.
The question it asks: is the trade between the clean view's reading and the noised view's prior
(session 11) made by the medium-noise images, whose text names objects the model can barely see?

``--degraded-from-step N``: the first N LLaVA steps train on clean images only (with
``--grounding-steps N``: the grounding stage is clean and only the default world's stage sees degraded
images). The question it asks: does the grounding stage read better when its images are clean, and
does the noised view then learn the scene prior alone, from the one stage that has one?

``--degraded-lm-only``: the degraded images' rows pass no gradient into the projector and the
vision tower (the image tokens' gradient is zeroed for those rows), so the prior the noised view
stands for is learnt by the language model alone. The question it asks: does the tower then stay as
sharp as without degraded images while the noised view keeps v4's prior?

``--warm-start MODEL``: the freshly built model takes MODEL's vision tower, projector and input
embeddings before training (same shape; the embedding rows are matched by token, so MODEL may come
from another world whose vocabulary differs).
The question it asks (LOG.md, session 19): does a tower trained once, long, on fresh images give a
language model that reads, without paying for that stage 0 in every run? Pass ``--vision-steps 0`` to
`seed pretrain` to keep the tower as it is.

Everything after ``--`` is passed to `seed pretrain` as it is (``--params P`` first to read another
params file).
"""

from __future__ import annotations

import argparse
import sys


def gradient_cut(current: dict):
    """A forward hook for the projector: its output's gradient is zeroed on the rows that
    ``current["rows"]`` names (the batch's degraded images, set by ``degrade``); each batch's rows
    are used once. A batch with no degraded rows, or a forward without gradient, is left alone."""
    import torch

    def hook(module, inputs, output):
        rows = current.pop("rows", None)
        if not rows or not output.requires_grad:
            return output
        if output.shape[0] != current["batch"]:
            raise SystemExit(f"projector output {tuple(output.shape)} is not one block per image")
        keep = torch.ones(output.shape[0], *([1] * (output.dim() - 1)), dtype=output.dtype)
        keep[rows] = 0
        output.register_hook(lambda grad: grad * keep)
        return output

    return hook


def ranged_degrade(low: int, high: int, current: dict, first: int = 0):
    """`seed.stages.pretrain.degrade` with the diffusion step drawn uniformly from [low, high) instead
    of [0, 999]; it records each batch's noised rows in ``current`` for `gradient_cut`. With low 0 and
    high 1000 it draws the same rows, steps and seeds as `pretrain.degrade` from the same generator.
    Its first ``first`` calls (one per training step) return the batch unchanged."""
    import torch

    from seed.core.noise import add_diffusion_noise

    calls = [0]

    def degrade(pixels, rate, generator):
        calls[0] += 1
        if calls[0] <= first:
            current["rows"], current["batch"] = [], pixels.shape[0]
            return pixels
        chosen = (torch.rand(pixels.shape[0], generator=generator) < rate).nonzero().flatten().tolist()
        current["rows"], current["batch"] = chosen, pixels.shape[0]
        if not chosen:
            return pixels
        out = pixels.clone()
        for i in chosen:
            step = int(torch.randint(low, high, (1,), generator=generator))
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            out[i : i + 1] = add_diffusion_noise(pixels[i : i + 1], step, seeds=[seed])
        return out

    return degrade


def warm_start(model, source, vocab: dict | None = None, source_vocab: dict | None = None) -> int:
    """Copy ``source``'s vision tower, projector and input embeddings into ``model`` (both Llava
    models of one shape); everything else in ``model`` is left as built. Returns the number of
    embedding rows copied.

    Without vocabularies the embedding matrices must match row for row. With ``vocab`` and
    ``source_vocab`` (token -> id, as ``tokenizer.get_vocab()``) the rows are matched by token, so a
    model for another world, whose tokenizer has other words, takes the rows of the tokens both know
    and keeps its own initialisation for the rest.
    """
    import torch

    model.model.vision_tower.load_state_dict(source.model.vision_tower.state_dict())
    model.model.multi_modal_projector.load_state_dict(source.model.multi_modal_projector.state_dict())
    target, theirs = model.get_input_embeddings().weight, source.get_input_embeddings().weight
    if vocab is None or source_vocab is None:
        model.get_input_embeddings().load_state_dict(source.get_input_embeddings().state_dict())
        return target.shape[0]
    shared = sorted(set(vocab) & set(source_vocab))
    with torch.no_grad():
        for token in shared:
            target[vocab[token]] = theirs[source_vocab[token]]
    return len(shared)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degraded-max-step", type=int, default=1000)
    parser.add_argument("--degraded-min-step", type=int, default=0)
    parser.add_argument("--degraded-from-step", type=int, default=0)
    parser.add_argument("--degraded-lm-only", action="store_true")
    parser.add_argument(
        "--warm-start", default=None, help="model folder whose tower, projector, embeddings start"
    )
    own, _, rest = " ".join(sys.argv[1:]).partition(" -- ")
    args = parser.parse_args(own.split())

    from seed.cli import main as seed_main
    from seed.core.noise import DEFAULT_NUM_STEPS
    from seed.stages import pretrain

    if not 0 < args.degraded_max_step <= DEFAULT_NUM_STEPS:
        raise SystemExit(f"--degraded-max-step must be in 1..{DEFAULT_NUM_STEPS}")
    if not 0 <= args.degraded_min_step < args.degraded_max_step:
        raise SystemExit("--degraded-min-step must be in 0..--degraded-max-step - 1")

    current = {}  # the rows degrade() noised in the batch now being trained, for the projector hook
    if args.degraded_from_step < 0:
        raise SystemExit("--degraded-from-step must be >= 0")
    degrade = ranged_degrade(args.degraded_min_step, args.degraded_max_step, current, args.degraded_from_step)

    if args.degraded_lm_only or args.warm_start:
        from seed.base import modeling

        build_model = modeling.build_model

        def build_and_change(*a, **k):  # what `seed pretrain` builds, warm-started and/or with the hook
            model = build_model(*a, **k)
            if args.warm_start:
                from seed.model.generate import load_model

                source, processor = load_model(args.warm_start)
                tokenizer = a[1] if len(a) > 1 else k["tokenizer"]
                copied = warm_start(model, source, tokenizer.get_vocab(), processor.tokenizer.get_vocab())
                print(f"warm start: {copied} of {len(tokenizer)} embedding rows from {args.warm_start}")
            if args.degraded_lm_only:
                model.model.multi_modal_projector.register_forward_hook(gradient_cut(current))
            return model

        modeling.build_model = build_and_change
    pretrain.degrade = degrade
    words = rest.split()
    if words[:1] == ["--params"]:  # a global option of `seed`, written before the command
        return seed_main([*words[:2], "pretrain", *words[2:]])
    return seed_main(["pretrain", *words])


if __name__ == "__main__":
    raise SystemExit(main())
