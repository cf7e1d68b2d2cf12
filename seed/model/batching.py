"""Turn (image, prompt, response) triples into model inputs and `labels`, for any vision-language processor.

The processor's own chat template and ``__call__`` place the image tokens, so one code path serves
LLaVA, Qwen2-VL, InternVL and any ``AutoProcessor`` with a chat template:

```
prompt    = template([user: image + text], add_generation_prompt)     -> processor(images, prompt)
completion = template([user, assistant: response])[len(prompt):]       -> tokenizer(completion)
             (+ eos when the template ends the turn with no special token)

input_ids  [bos USER: <image> x N  question ASSISTANT:][ answer </s>][pad pad]
labels     [-100 ...................................-100][ answer </s>][-100 -100]
```

The prompt is tokenised exactly as at generation time and the completion separately, so the prompt
tokens a model is trained on are the ones it sees when it answers.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100

# Per-token inputs a processor may return besides input_ids / attention_mask; completion and padding
# positions get 0 (text) in them.
_PER_TOKEN_KEYS = ("token_type_ids", "mm_token_type_ids")


def chat_messages(prompt: str, response: str | None = None) -> list[dict[str, Any]]:
    """One user turn (an image item, then a text item) and, if given, the assistant's answer."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
    ]
    if response is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": response}]})
    return messages


def render_prompt(processor: Any, prompt: str, add_generation_prompt: bool = True) -> str:
    """The chat-template text of one user turn with an image, as the model sees it before answering."""
    return processor.apply_chat_template(
        chat_messages(prompt), add_generation_prompt=add_generation_prompt, tokenize=False
    )


def render_completion(processor: Any, prompt: str, response: str, add_generation_prompt: bool = True) -> str:
    """The text that follows the rendered prompt when the template renders ``response`` as the answer.

    That is the response plus the template's end of turn (``<|im_end|>``, ``</s>``, ...), with
    trailing whitespace dropped. When the turn does not end with a special token (LLaVA-1.5-hf's
    template adds none) the tokenizer's eos token is appended, so the model learns to stop. If the
    full conversation does not start with the rendered prompt, the completion is ``response + eos``.
    """
    head = render_prompt(processor, prompt, add_generation_prompt)
    return _completion_after(processor, head, prompt, response)


def _completion_after(processor: Any, head: str, prompt: str, response: str) -> str:
    tokenizer = processor.tokenizer
    full = processor.apply_chat_template(chat_messages(prompt, response), tokenize=False)
    completion = full[len(head) :] if full.startswith(head) else response
    completion = completion.rstrip()
    eos = tokenizer.eos_token
    if eos and not any(completion.endswith(tok) for tok in tokenizer.all_special_tokens):
        completion += eos
    return completion


def _image_token_ids(processor: Any) -> set[int]:
    """Ids the processor uses for image placeholders (image token, and begin/end-of-image if any)."""
    ids = getattr(processor, "image_token_ids", None) or [getattr(processor, "image_token_id", None)]
    return {int(i) for i in ids if i is not None}


def build_batch(
    processor: Any,
    images: list[Any],
    prompts: list[str],
    responses: list[str] | None = None,
    add_generation_prompt: bool = True,
    padding_side: str = "right",
) -> dict[str, Any]:
    """Model inputs for one batch of single-image prompts, and ``labels`` when ``responses`` are given.

    Args:
        processor: a multimodal processor with a chat template (``AutoProcessor.from_pretrained(...)``).
        images: one PIL image per sample.
        prompts: the user's text per sample (without any image placeholder: the template adds it).
        responses: the assistant's answer per sample, or None for a prompt-only (generation) batch.
        add_generation_prompt: end the prompt with the assistant header (``ASSISTANT:``, ...).
        padding_side: "right" for training, "left" for generation.

    Returns:
        Everything the processor returns (``pixel_values``, ``image_grid_thw``, ...) with
        ``input_ids`` and ``attention_mask`` of shape (batch, seq) covering prompt + completion, and,
        with responses, ``labels`` (batch, seq): the completion's token ids, -100 on prompt, image
        and padding positions.
    """
    import torch

    n = len(images)
    if len(prompts) != n or (responses is not None and len(responses) != n):
        lengths = f"{n} images, {len(prompts)} prompts" + (
            f", {len(responses)} responses" if responses is not None else ""
        )
        raise ValueError(f"build_batch needs one prompt (and response) per image; got {lengths}")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    if n == 0:
        raise ValueError("build_batch needs at least one sample")

    tokenizer = processor.tokenizer
    texts = [render_prompt(processor, p, add_generation_prompt) for p in prompts]
    call: dict[str, Any] = {"return_tensors": "pt", "padding": True, "padding_side": "right"}
    if tokenizer.bos_token and all(t.startswith(tokenizer.bos_token) for t in texts):
        call["add_special_tokens"] = False  # the template already wrote bos; do not add a second one
    encoded = dict(processor(images=[[image] for image in images], text=texts, **call))

    prompt_mask = encoded.pop("attention_mask").bool()
    prompt_ids = encoded.pop("input_ids")
    per_token = {key: encoded.pop(key) for key in _PER_TOKEN_KEYS if key in encoded}

    image_ids = _image_token_ids(processor)
    rows: list[dict[str, list[int]]] = []
    for i in range(n):
        keep = prompt_mask[i]
        ids = prompt_ids[i][keep].tolist()
        extra = {key: value[i][keep].tolist() for key, value in per_token.items()}
        completion: list[int] = []
        if responses is not None:
            text = _completion_after(processor, texts[i], prompts[i], responses[i])
            completion = tokenizer(text, add_special_tokens=False)["input_ids"]
            if image_ids & set(completion):
                raise ValueError(f"response {i} contains an image placeholder token: {responses[i]!r}")
        row = {
            "input_ids": ids + completion,
            "attention_mask": [1] * (len(ids) + len(completion)),
            "labels": [IGNORE_INDEX] * len(ids) + completion,
        }
        row.update({key: values + [0] * len(completion) for key, values in extra.items()})
        rows.append(row)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError(f"{type(tokenizer).__name__} has neither a pad nor an eos token to pad with")
    fill = {"input_ids": pad_id, "attention_mask": 0, "labels": IGNORE_INDEX, **dict.fromkeys(per_token, 0)}
    width = max(len(row["input_ids"]) for row in rows)
    batch: dict[str, Any] = {}
    for key, value in fill.items():
        if key == "labels" and responses is None:
            continue
        padded = []
        for row in rows:
            pad = [value] * (width - len(row[key]))
            padded.append(row[key] + pad if padding_side == "right" else pad + row[key])
        dtype = per_token[key].dtype if key in per_token else torch.long
        batch[key] = torch.tensor(padded, dtype=dtype)
    batch.update(encoded)
    return batch


def response_mask(labels: Any) -> Any:
    """Bool mask (batch, seq) of the positions whose label is kept: ``labels != -100``.

    ``labels`` (batch, seq) as `build_batch` returns them. For next-token logits (batch, seq, vocab)
    the prediction of position t sits at t - 1: pair ``logits[:, :-1]`` with ``mask[:, 1:]``.
    """
    return labels != IGNORE_INDEX
