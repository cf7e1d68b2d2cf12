"""A published model shape (``bench/shapes/<name>.json``) built in-process: random weights, local processor.

    bench/shapes/llava-1.5-7b.json   CLIP ViT-L/14 at 336 px (576 image tokens) -> 2-layer MLP projector
                                     -> Llama-2-7B decoder (hidden 4096, 32 layers, 32 heads, MLP 11008,
                                     vocabulary 32064), as in llava-hf/llava-1.5-7b-hf's config.json

Nothing is downloaded. The processor is the embedded model's (`seed.base.modeling.build_tokenizer` /
`seed.base.modeling.build_processor`: a word-level tokenizer of the benchmark's own text, CLIP image
normalisation at the shape's image size, the LLaVA-1.5 chat template); the embedding and head keep the
published vocabulary of 32064 rows, of which the tokenizer uses the first few. Random weights cost
the same time and memory as trained ones.

On a CPU, `sliced` keeps every width and cuts the tower and the decoder to 2 layers each, so that the
code path runs without 14 GB of weights. A round of SEED is projected from measured rates by
`project_round`.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from seed.errors import ConfigError

SHAPES = Path(__file__).resolve().parent / "shapes"
CPU_LAYERS = 2  # decoder and vision layers of the CPU slice


def shape_names() -> list[str]:
    return sorted(p.stem for p in SHAPES.glob("*.json"))


def load_shape(name: str) -> dict[str, Any]:
    """The shape file ``bench/shapes/<name>.json`` as a dict (``vision_config``, ``text_config``, ...)."""
    path = SHAPES / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"--shape {name!r} is unknown; choose one of {', '.join(shape_names())}")
    return json.loads(path.read_text())


def sliced(shape: dict[str, Any], layers: int = CPU_LAYERS) -> dict[str, Any]:
    """The same shape with at most ``layers`` vision and decoder layers (every width kept)."""
    out = copy.deepcopy(shape)
    for part in ("vision_config", "text_config"):
        out[part]["num_hidden_layers"] = min(layers, out[part]["num_hidden_layers"])
    out["sliced_to_layers"] = layers
    return out


def image_tokens(shape: dict[str, Any], image_size: int | None = None) -> int:
    """Image tokens per image: patches of the tower (the CLS token is dropped, ``default`` strategy)."""
    vision = shape["vision_config"]
    return ((image_size or vision["image_size"]) // vision["patch_size"]) ** 2


def parameter_count(shape: dict[str, Any], image_size: int | None = None) -> int:
    """Parameters of the LLaVA-1.5 layout, counted from the shape (no model built)."""
    v, t = shape["vision_config"], shape["text_config"]
    vh, th = v["hidden_size"], t["hidden_size"]
    patches = image_tokens(shape, image_size)
    vision = (
        3 * v["patch_size"] ** 2 * vh  # patch embedding (no bias)
        + (patches + 1 + 1) * vh  # positions (with CLS) and the CLS embedding
        + 2 * 2 * vh  # pre- and post-layernorm
        + v["num_hidden_layers"]
        * (4 * (vh * vh + vh) + 2 * vh * v["intermediate_size"] + v["intermediate_size"] + vh + 4 * vh)
    )
    projector = vh * th + th + th * th + th
    head_dim = th // t["num_attention_heads"]
    kv = t["num_key_value_heads"] * head_dim
    layer = th * th * 2 + 2 * th * kv + 3 * th * t["intermediate_size"] + 2 * th
    decoder = 2 * t["vocab_size"] * th + t["num_hidden_layers"] * layer + th
    return vision + projector + decoder


def build_processor(shape: dict[str, Any], texts: list[str], image_size: int | None = None) -> Any:
    """The embedded model's LlavaProcessor at the shape's image and patch size, over ``texts``' words."""
    from seed.base.modeling import ModelConfig, build_tokenizer
    from seed.base.modeling import build_processor as llava_processor

    vision = shape["vision_config"]
    size = ModelConfig(image_size=image_size or vision["image_size"], patch_size=vision["patch_size"])
    return llava_processor(build_tokenizer(texts), size)


def llava_config(shape: dict[str, Any], tokenizer: Any, image_size: int | None = None) -> Any:
    """`transformers.LlavaConfig` of the shape, with the tokenizer's special token ids."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    from seed.base.modeling import IMAGE_TOKEN

    vision = {k: v for k, v in shape["vision_config"].items() if k != "model_type"}
    if image_size:
        vision["image_size"] = image_size
    text = {k: v for k, v in shape["text_config"].items() if k != "model_type" and not k.startswith("_")}
    if len(tokenizer) > text["vocab_size"]:
        raise ConfigError(
            f"the tokenizer has {len(tokenizer)} tokens, more than the shape's {text['vocab_size']}"
        )
    published = shape["published"]
    return LlavaConfig(
        vision_config=CLIPVisionConfig(**vision),
        text_config=LlamaConfig(
            **text,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy=published["vision_feature_select_strategy"],
        vision_feature_layer=published["vision_feature_layer"],
        image_seq_length=image_tokens(shape, image_size),
        projector_hidden_act=published["projector_hidden_act"],
        tie_word_embeddings=published["tie_word_embeddings"],
    )


def build_model(
    shape: dict[str, Any],
    processor: Any,
    device: str,
    dtype: Any,
    seed: int = 0,
    image_size: int | None = None,
) -> Any:
    """A randomly initialised `LlavaForConditionalGeneration` of ``shape``, built directly on ``device`` in ``dtype``.

    The weights are allocated where they live (``torch.device`` context, default dtype ``dtype``), so a
    7B model never passes through float32 or the host. Eval mode.
    """
    import torch
    from transformers import LlavaForConditionalGeneration

    tokenizer = processor.tokenizer
    config = llava_config(shape, tokenizer, image_size)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval()


def project_round(samples: int, rates: dict[str, float]) -> dict[str, float]:
    """Wall time (s) of one SEED round on ``samples`` unlabelled samples, from measured rates.

    A round is stage purify (the model answers every sample: ``generate_samples_per_second``; the
    clean+noised teacher pass: ``teacher_samples_per_second``) then stage distill
    (``epochs`` x ceil(samples / ``distill_batch``) steps of ``distill_seconds_per_step``, offline
    targets). Loading, evaluation and file I/O are not included.
    """
    generate = samples / rates["generate_samples_per_second"]
    teacher = samples / rates["teacher_samples_per_second"]
    steps = rates.get("epochs", 1) * math.ceil(samples / rates["distill_batch"])
    distill = steps * rates["distill_seconds_per_step"]
    return {
        "samples": samples,
        "generate_seconds": generate,
        "teacher_seconds": teacher,
        "distill_steps": steps,
        "distill_seconds": distill,
        "total_seconds": generate + teacher + distill,
        "total_hours": (generate + teacher + distill) / 3600,
    }
