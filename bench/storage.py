"""Storage of the purified targets: sparse top-k (as shards hold them) against dense float16, and the KL lost.

Three cases, on the same samples:

- (a) ``default_model``: the default model with its own word-level vocabulary (~161 tokens): bytes of
  the shards of ``artifacts/targets`` as written by stage purify, and the truncation KL on recomputed
  targets of the first samples. Its KL is a trained model's, but a 161-token vocabulary makes dense
  float16 (322 B/token) cheaper than any top-32 form (196 B/token): its byte ratio says nothing
  about a real tokenizer.
- (b) ``vocab_32000``: a real model's vocabulary size (32000, as LLaVA-1.5's Llama tokenizer) on an
  untrained model of the default layout with a 32000-token head. Its logits are nearly flat (random
  weights), so nearly every token is plausible and the top k hold a small share of the mass. Kept as
  the worst case for truncation, reported as measured (with the support size and tail mass).
- (c) ``padded_vocab``: the trained default model with its embedding and head padded to 32000 rows,
  the new rows zero (`pad_vocab`), so the new tokens get logit 0. This is an EMULATION of a real
  vocabulary's unused tail (ids a real tokenizer has but the training data never used), not a real
  32000-token model: the distribution over the real tokens is unchanged (checked: the padded model's
  logits on them equal the unpadded model's, `check_padding`), and the ~31800 padded tokens enter
  the softmax, the confidence, the plausibility cut and the truncation KL's tail spread exactly as
  purify would see them. The padded tokens' share of the clean softmax and of the plausible sets is
  reported with it. Logit 0 is not low for every position of a small trained model, so the padded
  tokens can hold much of the clean softmax (lowering the max-prob confidence, so strengthening the
  adaptive contrast); they enter a plausible set only where the top logit is below ``ln(1 / cd_beta)``.
  Where every plausible set fits in the top k, the truncation KL is float16 rounding only.

The acceptance keys ``sparse_vs_dense_bytes`` and ``truncation_kl_nats`` are case (c): the one case
where both are measured on the same model with trained distributions at a real vocabulary size. (a)'s
values are kept under ``*_default_vocab`` and (b)'s under ``*_32000``. Without ``artifacts/base-model``
(c) pads the untrained stand-in of `bench.common.base_model`; ``trained`` is then false.

The truncation KL is `bench.metrics.truncation_kl`: from the full purified distribution to the
stored one (kept tokens at their float16 probabilities, tail mass spread over the other tokens,
renormalised). `bench.metrics.renormalised_topk_kl` (the KL of the kept tokens renormalised, what the
distillation loss fits) is reported beside it.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from bench.common import Runtime, base_model, build_llava, load_processor, ratio, teacher_samples, world
from bench.metrics import dense_bytes_per_token, renormalised_topk_kl, sparse_bytes_per_token, truncation_kl

if TYPE_CHECKING:
    import torch

REAL_VOCAB = 32000
PAD_LOGIT = 0.0  # the logit of a padded token: zero weight rows, no bias


def sizes(rt: Runtime) -> dict[str, int]:
    return {"samples": 32 if rt.quick else 64}


def padded_rows(weight: torch.Tensor, rows: int, value: float = 0.0) -> torch.Tensor:
    """(V, ...) ``weight`` -> (rows, ...): the V rows unchanged, rows ``V..rows-1`` filled with ``value``."""
    if rows < weight.shape[0]:
        raise ValueError(f"cannot pad {weight.shape[0]} rows down to {rows}")
    out = weight.new_full((rows, *weight.shape[1:]), value)
    out[: weight.shape[0]] = weight
    return out


def pad_vocab(model: Any, vocab: int) -> Any:
    """A copy of ``model`` with its input embedding and output head widened to ``vocab`` tokens.

    The new rows (and head bias, if any) are zero, so a new token's logit is exactly `PAD_LOGIT` and
    the logits of the original tokens are those of ``model``: (..., V) logits become (..., vocab).
    The text config's ``vocab_size`` is updated. The input rows are never read (the tokenizer's ids
    stay below V); they are padded so the model is a consistent ``vocab``-token model.
    """
    import torch

    padded = copy.deepcopy(model)
    with torch.no_grad():
        embed = padded.get_input_embeddings()
        wide_embed = torch.nn.Embedding(
            vocab,
            embed.embedding_dim,
            padding_idx=embed.padding_idx,
            device=embed.weight.device,
            dtype=embed.weight.dtype,
        )
        wide_embed.weight.copy_(padded_rows(embed.weight, vocab))
        padded.set_input_embeddings(wide_embed)
        head = padded.get_output_embeddings()
        wide_head = torch.nn.Linear(
            head.in_features,
            vocab,
            bias=head.bias is not None,
            device=head.weight.device,
            dtype=head.weight.dtype,
        )
        wide_head.weight.copy_(padded_rows(head.weight, vocab))
        if head.bias is not None:
            wide_head.bias.copy_(padded_rows(head.bias, vocab))
        padded.set_output_embeddings(wide_head)
    config = getattr(padded.config, "text_config", padded.config)
    config.vocab_size = vocab
    return padded.eval()


def stored_bytes(rt: Runtime, vocab: int) -> dict[str, Any] | None:
    """Bytes of the target tensors and files of ``rt.targets`` against dense float16 of ``vocab``; None if absent."""
    from seed.files.manifest import read_manifest
    from seed.files.targets import read_shard

    if not (rt.targets / "manifest.json").is_file():
        return None
    manifest = read_manifest(rt.targets, verify_hashes=False)
    tensor_bytes = tokens = 0
    file_bytes = 0
    for entry in manifest.shards:
        shard, _ = read_shard(entry.path)
        tensor_bytes += shard.targets.nbytes()
        tokens += int(shard.targets.indices.shape[0])
        file_bytes += entry.path.stat().st_size
    dense = tokens * dense_bytes_per_token(vocab)
    return {
        "tokens": tokens,
        "top_k": manifest.top_k,
        "target_tensor_bytes": tensor_bytes,
        "shard_file_bytes": file_bytes,
        "dense_fp16_bytes": dense,
        "sparse_vs_dense_bytes": ratio(tensor_bytes, dense),
        "shard_files_vs_dense_bytes": ratio(file_bytes, dense),
    }


def contrast_logits(
    model: Any, processor: Any, chunk: list, config: Any, rt: Runtime
) -> tuple[torch.Tensor, int]:
    """``(logits, n)`` of one chunk of samples: (2n, vocab) logits at the n response positions, clean then noised.

    The same inputs as `seed.model.teacher.teacher_targets`: one forward of the clean and noised batch (2B).
    """
    from seed.files.samples import IMAGES
    from seed.model.batching import build_batch
    from seed.model.generate import image_token_ids, open_image
    from seed.model.teacher import contrast_batch, noise_pixels, plain_logits, response_positions

    data = world(rt)
    batch = build_batch(
        processor,
        [open_image(data / IMAGES / s.image) for s in chunk],
        [s.prompt for s in chunk],
        [s.response for s in chunk],
    )
    batch = {k: v.to(rt.device) if hasattr(v, "to") else v for k, v in batch.items()}
    positions = response_positions(batch["labels"])
    noised = noise_pixels(
        batch, [s.sample_id for s in chunk], config.noise_step, config.seed, image_token_ids(processor)
    )
    inputs = contrast_batch(batch, noised)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    logits = plain_logits(model, **inputs, logits_to_keep=positions.repeat(2, 1))
    if logits.dim() == 3:
        logits = logits[positions.repeat(2, 1)]
    return logits, int(positions.sum())


def check_padding(
    model: Any, padded: Any, processor: Any, samples: list, config: Any, rt: Runtime
) -> dict[str, Any]:
    """Assert that ``padded`` (`pad_vocab` of ``model``) keeps ``model``'s logits on the real tokens.

    On the first chunk of ``samples``: the first V logit columns of ``padded`` equal ``model``'s up to
    matmul rounding (``max(1e-4, 4 eps of the dtype)`` relative to the largest logit; the hidden states
    are the same, only the head's matmul is wider) and the new columns are exactly `PAD_LOGIT`.
    Raises `AssertionError` otherwise (a bug of the emulation, not of the input); returns the largest
    difference found.
    """
    import torch

    chunk = samples[: config.batch_size]
    base, _ = contrast_logits(model, processor, chunk, config, rt)
    wide, _ = contrast_logits(padded, processor, chunk, config, rt)
    vocab = base.shape[-1]
    diff = float((wide[:, :vocab].float() - base.float()).abs().max())
    scale = float(base.float().abs().max())
    tolerance = max(1e-4, 4 * torch.finfo(base.dtype).eps) * max(scale, 1.0)
    if wide.shape[-1] <= vocab or diff > tolerance:
        raise AssertionError(
            f"padding changed the real tokens' logits by {diff} > {tolerance} (shape {tuple(wide.shape)})"
        )
    if not bool((wide[:, vocab:] == PAD_LOGIT).all()):
        raise AssertionError(f"padded tokens' logits are not the padding value {PAD_LOGIT}")
    return {"max_abs_logit_difference": diff, "max_abs_logit": scale, "tolerance": tolerance}


def full_targets(
    model: Any, processor: Any, samples: list, config: Any, rt: Runtime, real_vocab: int | None = None
) -> dict[str, Any]:
    """Purify the samples keeping the full distributions; truncation KL and bytes of their top-k form.

    The same steps as `seed.model.teacher.teacher_targets` (one clean + noised forward of 2B, purify,
    top-k), except that the dense ``log P*`` is kept to measure what the top-k form loses.
    ``real_vocab``: for a `pad_vocab` model, the original vocabulary size; the share of the clean
    softmax and of the plausible sets on the padded ids (>= ``real_vocab``) is then reported too.
    """
    import torch

    from seed.core.purify import SparseTargets, purify_logits, sparsify_targets

    kl, topk_kl, support, tail, tokens, sparse_bytes = [], [], [], [], 0, 0
    pad_mass, pad_support = [], []
    for start in range(0, len(samples), config.batch_size):
        chunk = samples[start : start + config.batch_size]
        logits, n = contrast_logits(model, processor, chunk, config, rt)
        log_probs, mask = purify_logits(
            logits[:n], logits[n:], config.cd_alpha, config.cd_beta, config.confidence, config.adaptive
        )
        sparse = sparsify_targets(log_probs, mask, config.top_k)
        sparse = SparseTargets(sparse.indices.cpu(), sparse.log_probs.cpu(), sparse.tail_mass.cpu())
        kl.append(truncation_kl(log_probs.cpu(), sparse))
        topk_kl.append(renormalised_topk_kl(sparse))
        support.append(mask.sum(-1).float().cpu())
        tail.append(sparse.tail_mass.double().cpu())
        if real_vocab is not None:
            clean = torch.softmax(logits[:n].double(), dim=-1)
            pad_mass.append(clean[:, real_vocab:].sum(-1).cpu())
            pad_support.append(mask[:, real_vocab:].sum(-1).float().cpu())
        tokens += n
        sparse_bytes += sparse.nbytes()
    kl_all, topk_all = torch.cat(kl), torch.cat(topk_kl)
    support_all, tail_all = torch.cat(support), torch.cat(tail)
    vocab = int(log_probs.shape[-1])
    dense = tokens * dense_bytes_per_token(vocab)
    out = {
        "vocab": vocab,
        "top_k": config.top_k,
        "tokens": tokens,
        "sparse_bytes": sparse_bytes,
        "dense_fp16_bytes": dense,
        "sparse_bytes_per_token": sparse_bytes_per_token(config.top_k),
        "dense_bytes_per_token": dense_bytes_per_token(vocab),
        "sparse_vs_dense_bytes": ratio(sparse_bytes, dense),
        "truncation_kl_nats": {"mean": float(kl_all.mean()), "max": float(kl_all.max())},
        "renormalised_topk_kl_nats": {"mean": float(topk_all.mean()), "max": float(topk_all.max())},
        "support_size": {"mean": float(support_all.mean()), "max": float(support_all.max())},
        "tail_mass": {"mean": float(tail_all.mean()), "max": float(tail_all.max())},
        "share_of_tokens_with_tail": float((tail_all > 0).double().mean()),
    }
    if real_vocab is not None:
        mass, in_support = torch.cat(pad_mass), torch.cat(pad_support)
        out["padded_tokens"] = vocab - real_vocab
        out["clean_softmax_mass_on_padded_tokens"] = {"mean": float(mass.mean()), "max": float(mass.max())}
        out["padded_tokens_in_support"] = {"mean": float(in_support.mean()), "max": float(in_support.max())}
    return out


def run_storage(rt: Runtime) -> dict[str, Any]:
    """Bytes and truncation KL: (a) the default model, (b) an untrained 32000-token model, (c) (a) padded to 32000."""
    from seed.model.generate import load_model
    from seed.stages import load_stage_config

    config = load_stage_config("purify", rt.params, device=rt.device, dtype=rt.dtype)
    samples = teacher_samples(rt, sizes(rt)["samples"])
    path = base_model(rt)
    trained = path == rt.model
    model, processor = load_model(path, dtype=rt.dtype, device=rt.device)
    default = full_targets(model, processor, samples, config, rt)
    default["stored"] = stored_bytes(rt, default["vocab"])
    default["trained"] = trained
    padded_model = pad_vocab(model, REAL_VOCAB)
    check = check_padding(model, padded_model, processor, samples, config, rt)
    del model
    padded = full_targets(padded_model, processor, samples, config, rt, real_vocab=default["vocab"])
    del padded_model
    padded["trained"] = trained
    padded["padding_check"] = check
    padded["model"] = (
        f"the {'trained' if trained else 'untrained stand-in'} default model, embedding and head padded from "
        f"{default['vocab']} to {REAL_VOCAB} tokens with zero rows (emulates a real vocabulary's unused tail)"
    )
    real = build_llava(rt, vocab_size=REAL_VOCAB)
    wide = full_targets(real, load_processor(rt), samples, config, rt)
    wide["model"] = "untrained, default layout, 32000-token embedding and head (worst case)"
    headline = default["stored"] or default
    return {
        "default_model": default,
        "vocab_32000": wide,
        "padded_vocab": padded,
        "acceptance_case": "padded_vocab",
        "sparse_vs_dense_bytes": padded["sparse_vs_dense_bytes"],
        "truncation_kl_nats": padded["truncation_kl_nats"]["mean"],
        "sparse_vs_dense_bytes_default_vocab": headline["sparse_vs_dense_bytes"],
        "truncation_kl_nats_default_vocab": default["truncation_kl_nats"]["mean"],
        "sparse_vs_dense_bytes_32000": wide["sparse_vs_dense_bytes"],
        "truncation_kl_nats_32000": wide["truncation_kl_nats"]["mean"],
    }
