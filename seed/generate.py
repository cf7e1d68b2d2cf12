"""Batched answering of (image, question) pairs with any AutoModelForImageTextToText + AutoProcessor.

Prompts go through the processor's own chat template (the processor places the image tokens), are
left-padded, and decoded with ``model.generate``: greedy by default, or the sampling protocol
(temperature 1, top_p 1) with a seed per batch so that runs are repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seed.conversation import user_message
from seed.errors import DataError


def load_model(
    model_path: str | Path,
    adapter: str | Path | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
):
    """``(model, processor)`` of a checkpoint (folder or hub id), in eval mode on ``device``.

    The processor of a local folder goes through `seed.tiny.load_processor`, which also loads
    Qwen2-VL / InternVL processors where torchvision is missing. With ``adapter`` a PEFT adapter is
    applied and merged, so the served model costs one forward per token. ``dtype="auto"`` keeps the
    checkpoint's dtype; ``trust_remote_code`` stays off unless the user turns it on.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from seed.tiny import load_processor

    local = Path(model_path)
    if local.exists() and not local.is_dir():
        raise DataError(local, "a model must be a folder written by save_pretrained (or a hub id)")
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
        processor = load_processor(local)
    else:
        processor = AutoProcessor.from_pretrained(str(model_path), trust_remote_code=trust_remote_code)
    model = AutoModelForImageTextToText.from_pretrained(
        str(model_path),
        dtype="auto" if dtype == "auto" else getattr(torch, dtype),
        trust_remote_code=trust_remote_code,
    )
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.to(device).eval(), processor


def open_image(path: str | Path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(path, "image not found") from exc
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot decode image: {exc}") from exc


def prompt_text(processor, question: str) -> str:
    """The exact text the model reads for one question about one image (chat template applied)."""
    return processor.apply_chat_template(
        [user_message(question, with_image=True)], tokenize=False, add_generation_prompt=True
    )


def answer_batch(
    model,
    processor,
    images: Sequence,
    questions: Sequence[str],
    max_new_tokens: int = 8,
    do_sample: bool = False,
    seed: int | None = None,
) -> list[str]:
    """Answer each (image, question) pair; returns the decoded new text per pair."""
    import torch

    texts = [prompt_text(processor, q) for q in questions]
    inputs = processor(
        images=list(images), text=texts, padding=True, padding_side="left", return_tensors="pt"
    )
    inputs = inputs.to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    kwargs = {"do_sample": do_sample, "max_new_tokens": max_new_tokens}
    if do_sample:
        kwargs.update(temperature=1.0, top_p=1.0, top_k=0)
        if seed is not None:
            torch.manual_seed(seed)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    tok = processor.tokenizer
    with torch.no_grad():
        out = model.generate(**inputs, pad_token_id=tok.pad_token_id, **kwargs)
    new_tokens = out[:, inputs["input_ids"].shape[1] :]
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
) -> list[str]:
    """Answer many pairs in batches with a progress bar; images are decoded once per batch."""
    from tqdm import tqdm

    answers: list[str] = []
    for b, start in enumerate(
        tqdm(range(0, len(questions), batch_size), desc=desc, disable=not progress, dynamic_ncols=True)
    ):
        paths = image_paths[start : start + batch_size]
        images = [open_image(p) for p in paths]
        answers.extend(
            answer_batch(
                model,
                processor,
                images,
                questions[start : start + batch_size],
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                seed=seed * 100003 + b,
            )
        )
    return answers
