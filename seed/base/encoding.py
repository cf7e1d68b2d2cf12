"""The embedded model's training batches: conversations rendered in its chat template, tokenised with
labels on the assistant answers only, padded into batches; images into normalised pixel tensors."""

from __future__ import annotations

from pathlib import Path


def render_conversation(messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The chat-template text of a conversation and the character spans the model must learn.

    Produces exactly what ``seed.base.modeling.CHAT_TEMPLATE`` renders (a test holds the two equal), but
    in one pass of string joins, which matters for thousands of multi-turn conversations. Each span
    covers one assistant answer and its ``</s>``.
    """
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    for message in messages:
        texts = "".join(item["text"] for item in message["content"] if item["type"] == "text")
        if message["role"] == "user":
            images = sum(item["type"] == "image" for item in message["content"])
            piece = "USER: " + "<image>\n" * images + texts + " "
        else:
            head = "ASSISTANT: "
            piece = head + texts + "</s>"
            spans.append((length + len(head), length + len(piece)))
        parts.append(piece)
        length += len(piece)
    return "".join(parts), spans


def encode_conversations(
    tokenizer, conversations: list[list[dict]], num_image_tokens: int
) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels per conversation; labels are -100 except on assistant answers (+ ``</s>``).

    The single ``<image>`` token of the template is expanded to ``num_image_tokens`` copies, as the
    processor does. Returns [(input_ids, labels)] with equal lengths.
    """
    rendered = [render_conversation(messages) for messages in conversations]
    batch = tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    out = []
    for (_, spans), ids, offsets in zip(rendered, batch["input_ids"], batch["offset_mapping"], strict=True):
        ids_out: list[int] = []
        labels_out: list[int] = []
        for tok, (begin, _end) in zip(ids, offsets, strict=True):
            learn = any(a <= begin < b for a, b in spans)
            reps = num_image_tokens if tok == image_id else 1
            ids_out.extend([tok] * reps)
            labels_out.extend([tok if learn else -100] * reps)
        out.append((ids_out, labels_out))
    return out


def load_pixels(processor, paths: list[Path], batch: int = 256):
    """Normalised pixel tensor (n, 3, H, W) for image files, through the processor's image side."""
    import torch

    from seed.model.generate import open_image

    chunks = []
    for i in range(0, len(paths), batch):
        images = [open_image(p) for p in paths[i : i + batch]]  # DataError naming a bad file
        chunks.append(processor.image_processor(images, return_tensors="pt")["pixel_values"])
    return torch.cat(chunks)


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-padded batch of encoded conversations: ``(input_ids, labels, attention_mask)``.

    rows: [(input_ids, labels)] as ``encode_conversations`` returns them. Each output is a long tensor
    of shape (len(rows), longest row); padding is ``pad_id`` in the ids, -100 in the labels, 0 in
    the mask.
    """
    import torch

    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    for row, (ids, labs) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return input_ids, labels, attention
