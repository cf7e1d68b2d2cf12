"""Batched answering of (image, question) pairs with any AutoModelForImageTextToText + AutoProcessor.

Prompts go through the processor's own chat template (the processor places the image tokens), are
left-padded, and decoded by the KV-cache loop of `seed.model.vcd` (the same tokens as ``model.generate``'s
greedy search; one loop for regular decoding and VCD, so their costs compare fairly): greedy by
default, or the sampling protocol (temperature 1, top_p 1) with a seed per pair so that runs are
repeatable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import DataError
from seed.files.conversation import user_message
from seed.files.inputs import DEFAULT_MAX_IMAGE_SIDE, image_mode_problem, image_size_problem

if TYPE_CHECKING:
    from seed.model.vcd import DecodeStats, VCDSettings


def load_model(
    model_path: str | Path,
    adapter: str | Path | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
):
    """``(model, processor)`` of a checkpoint (folder or hub id), in eval mode on ``device``.

    The processor of a local folder goes through `seed.model.processors.load_processor`, which also loads
    Qwen2-VL / InternVL processors where torchvision is missing. With ``adapter`` a PEFT adapter is
    applied and merged, so the served model costs one forward per token. ``dtype="auto"`` keeps the
    checkpoint's dtype; ``trust_remote_code`` stays off unless the user turns it on.

    Weights load from safetensors only (never a pickle). A folder without processor files or
    weights, a file the loaders cannot parse, or a processor that places no image tokens in the
    prompt raises `DataError` naming the folder (see `check_processor`).
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from seed.files.inputs import require_safetensors
    from seed.model.processors import load_processor

    local = Path(model_path)
    if local.exists() and not local.is_dir():
        raise DataError(local, "a model must be a folder written by save_pretrained (or a hub id)")
    if not local.exists() and (
        local.is_absolute() or str(model_path).startswith((".", "~")) or str(model_path).count("/") > 1
    ):  # a hub id is "name" or "org/name"
        raise DataError(local, "model folder not found")
    try:
        if local.is_dir():
            names = {p.name for p in local.iterdir()}
            if not names & {
                "processor_config.json",
                "preprocessor_config.json",
                "tokenizer.json",
                "tokenizer_config.json",
            }:
                raise DataError(
                    local,
                    "no processor files (processor_config.json / preprocessor_config.json / tokenizer.json) "
                    "beside the model: save the processor with the model",
                )
            require_safetensors(local, "model")
            processor = load_processor(local)
        else:
            processor = AutoProcessor.from_pretrained(str(model_path), trust_remote_code=trust_remote_code)
        check_processor(processor, model_path)
        model = AutoModelForImageTextToText.from_pretrained(
            str(model_path),
            dtype="auto" if dtype == "auto" else getattr(torch, dtype),
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
        )
    except OSError as exc:
        if not local.exists():  # neither a folder nor a hub id in the cache (or reachable)
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
            hint = " (downloads are off: set HF_HUB_OFFLINE=0 to fetch a hub model)" if offline else ""
            raise DataError(
                model_path, f"model folder not found, and no hub model of that id could be loaded{hint}"
            ) from exc
        raise DataError(model_path, f"cannot load the model: {_one_line(exc)}") from exc
    except (ValueError, KeyError, TypeError) as exc:  # unreadable or inconsistent checkpoint files
        raise DataError(model_path, f"cannot load the model: {_one_line(exc)}") from exc
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise DataError(adapter, "not a PEFT adapter folder (no adapter_config.json)")
        require_safetensors(Path(adapter), "adapter")
        try:
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise DataError(adapter, f"cannot load the adapter onto {model_path}: {_one_line(exc)}") from exc
    return model.to(device).eval(), processor


def load_pretrained(model_path: str | Path, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """``(model, processor)`` of a checkpoint, model in eval mode on ``device``; no adapter."""
    return load_model(model_path, dtype=dtype, device=device)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 300 characters (loader messages run long)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def image_token_ids(processor: Any) -> set[int]:
    """The processor's image placeholder ids (image token, and begin/end-of-image ones where it has them)."""
    ids = getattr(processor, "image_token_ids", None) or [getattr(processor, "image_token_id", None)]
    return {int(i) for i in ids if i is not None}


def usable_response(processor: Any, response: str) -> bool:
    """False for an empty response or one whose text tokenises to an image placeholder token."""
    if not response:
        return False
    ids = set(processor.tokenizer(response, add_special_tokens=False)["input_ids"])
    return not ids & image_token_ids(processor)


def check_processor(processor, model_path: str | Path) -> None:
    """Raise `DataError` unless the processor has a chat template and places image tokens.

    One tiny (image, question) pair goes through `prompt_text` and the processor; the resulting
    ``input_ids`` must hold the processor's image token. A processor that inserts none would make
    every forward fail deep inside the model ("image features and image tokens do not match").
    """
    from PIL import Image

    if not getattr(processor, "chat_template", None):
        raise DataError(
            model_path, "the processor has no chat template (chat_template.jinja / chat_template.json)"
        )
    image_ids = image_token_ids(processor)
    if not image_ids:
        raise DataError(model_path, "the processor names no image token (image_token_id)")
    try:
        text = prompt_text(processor, "Is there a dog in the image?")
        ids = processor(images=[Image.new("RGB", (32, 32))], text=[text], return_tensors="pt")["input_ids"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(
            model_path, f"the processor cannot build a prompt with an image: {_one_line(exc)}"
        ) from exc
    if not any(int(token) in image_ids for token in ids[0]):
        raise DataError(
            model_path,
            "the processor inserts no image tokens into the prompt (check its chat template and image_token)",
        )


def open_image(path: str | Path, max_side: int = DEFAULT_MAX_IMAGE_SIDE):
    """The image file at ``path`` as an 8-bit RGB PIL image, fully decoded.

    `DataError` naming the file when it is missing, not an image, truncated or corrupt, larger than
    ``max_side`` pixels on a side (checked from the header, before any pixel is decoded, so a
    decompression bomb costs nothing), or in a mode with no faithful RGB form (16-bit, float).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            problem = image_size_problem(im.size, max_side) or image_mode_problem(im.mode)
            if problem is not None:
                raise DataError(path, problem)
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(path, "image not found") from exc
    except IsADirectoryError as exc:
        raise DataError(path, "is a folder, not an image file") from exc
    except Image.DecompressionBombError as exc:
        raise DataError(path, f"image too large to decode safely: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # PIL's errors for broken files
        raise DataError(path, f"cannot decode image: {exc}") from exc


def prompt_text(processor, question: str) -> str:
    """The exact text the model reads for one question about one image (chat template applied)."""
    return processor.apply_chat_template(
        [user_message(question, with_image=True)], tokenize=False, add_generation_prompt=True
    )


def eos_token_ids(model, processor) -> list[int]:
    """Ids that end an answer: the generation config's ``eos_token_id`` (int or list) and the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = list(ids) if isinstance(ids, list | tuple) else [ids]
    ids.append(processor.tokenizer.eos_token_id)
    return sorted({int(i) for i in ids if i is not None})


def yes_no_token_ids(processor) -> tuple[int, int]:
    """The ids of the first token of an answer "Yes" and of an answer "No" (as the model writes them)."""
    tok = processor.tokenizer
    yes = tok.encode("Yes", add_special_tokens=False)
    no = tok.encode("No", add_special_tokens=False)
    if not yes or not no or yes[0] == no[0]:
        raise ValueError("the tokenizer gives no distinct first tokens for 'Yes' and 'No'")
    return int(yes[0]), int(no[0])


def answer_batch(
    model,
    processor,
    images: Sequence,
    questions: Sequence[str],
    max_new_tokens: int = 8,
    do_sample: bool = False,
    seed: int | None = None,
    *,
    vcd: VCDSettings | None = None,
    sample_ids: Sequence[str] | None = None,
    stats: DecodeStats | None = None,
    yes_bias: float = 0.0,
    margins: list[float] | None = None,
) -> list[str]:
    """Answer each (image, question) pair; returns the decoded new text per pair.

    Decoding is `seed.model.vcd.decode`: regular decoding (one forward per token), or VCD with ``vcd``
    settings (two). ``sample_ids`` name the pairs (default: their position in the batch): with
    ``seed`` they seed each pair's sampling generator and its VCD noise
    (`seed.core.noise.sample_seed`), so an answer does not depend on the batch it is in. ``stats``
    accumulates forward calls, steps, tokens and seconds (VCD's noising included). ``yes_bias`` is
    added to the "Yes" logit and subtracted from the "No" logit at every step (the constant-bias
    control). With ``margins``, the first answer token's "Yes" minus "No" logit (contrasted under
    VCD, before the bias) of each pair is appended to it.
    """
    import time

    import torch

    from seed.core.noise import sample_seed
    from seed.model.vcd import decode

    if len(images) != len(questions):
        raise ValueError(f"{len(images)} images for {len(questions)} questions")
    ids = list(sample_ids) if sample_ids is not None else [str(i) for i in range(len(questions))]
    texts = [prompt_text(processor, q) for q in questions]
    inputs = processor(
        images=list(images), text=texts, padding=True, padding_side="left", return_tensors="pt"
    )
    inputs = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    generators = None
    if do_sample and seed is not None:
        generators = [torch.Generator().manual_seed(sample_seed(f"sample:{i}", seed)) for i in ids]
    noised = None
    started = time.perf_counter()
    if vcd is not None:
        from seed.model.teacher import noise_pixels

        noised = noise_pixels(inputs, ids, vcd.noise_step, seed or 0, image_token_ids(processor))
    noise_seconds = time.perf_counter() - started
    tok = processor.tokenizer
    first: list[torch.Tensor] | None = [] if margins is not None else None
    bias = None
    if yes_bias:
        yes, no = yes_no_token_ids(processor)
        vocab = model.get_output_embeddings().weight.shape[0]
        bias = torch.zeros(vocab, device=model.device)
        bias[yes], bias[no] = yes_bias, -yes_bias
    new_tokens = decode(
        model,
        inputs,
        max_new_tokens,
        eos_token_ids(model, processor),
        tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        noised_pixel_values=noised,
        cd_alpha=vcd.cd_alpha if vcd else 0.0,
        cd_beta=vcd.cd_beta if vcd else 0.0,
        do_sample=do_sample,
        generators=generators,
        stats=stats,
        logit_bias=bias,
        first_scores=first,
    )
    if margins is not None:
        yes, no = yes_no_token_ids(processor)
        margins.extend((first[0][:, yes] - first[0][:, no]).tolist())
    if stats is not None:
        stats.seconds += noise_seconds
    return [t.strip() for t in tok.batch_decode(new_tokens, skip_special_tokens=True)]


def answer_all(
    model,
    processor,
    image_paths: Sequence[Path],
    questions: Sequence[str],
    batch_size: int = 64,
    max_new_tokens: int = 8,
    do_sample: bool = False,
    seed: int = 0,
    desc: str = "answer",
    progress: bool = True,
    *,
    vcd: VCDSettings | None = None,
    stats: DecodeStats | None = None,
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
    yes_bias: float = 0.0,
    margins: list[float] | None = None,
) -> list[str]:
    """Answer many pairs in batches with a progress bar; images are decoded once per batch.

    A pair is named ``"<image file name>|<question>"`` for its sampling and noise seeds, so its
    answer is the same in any batch (see `answer_batch`). Images larger than ``max_image_side``
    pixels on a side are refused (`open_image`). ``yes_bias`` and ``margins`` as in `answer_batch`.
    """
    from tqdm import tqdm

    answers: list[str] = []
    for start in tqdm(
        range(0, len(questions), batch_size), desc=desc, disable=not progress, dynamic_ncols=True
    ):
        paths = image_paths[start : start + batch_size]
        chunk = questions[start : start + batch_size]
        answers.extend(
            answer_batch(
                model,
                processor,
                [open_image(p, max_image_side) for p in paths],
                chunk,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                seed=seed,
                vcd=vcd,
                sample_ids=[f"{Path(p).name}|{q}" for p, q in zip(paths, chunk, strict=True)],
                stats=stats,
                yes_bias=yes_bias,
                margins=margins,
            )
        )
    return answers
