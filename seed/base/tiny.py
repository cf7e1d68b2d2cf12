"""Tiny, randomly initialised vision-language models with their real processors, built in-process.

Tests and the default pipeline run need a model without downloading one. `build_tiny(arch)` returns a
real transformers model class (reachable through ``AutoModelForImageTextToText``) and its real processor
class, with a byte-level BPE tokenizer trained here on a few sentences, the special tokens that the
processor needs, and a chat template in the style of the original checkpoint:

    llava       LlavaForConditionalGeneration + LlavaProcessor
                image item "<image>", expanded to 16 x "<image>"
    qwen2_vl    Qwen2VLForConditionalGeneration + Qwen2VLProcessor (qwen2_5_vl: the Qwen2_5_VL classes)
                "<|vision_start|><|image_pad|><|vision_end|>", "<|image_pad|>" expanded per 16x16 px
    internvl    InternVLForConditionalGeneration + InternVLProcessor
                "<IMG_CONTEXT>", expanded to "<img>" + 16 x "<IMG_CONTEXT>" + "</img>" per 32 px tile

Each model has a few hundred thousand parameters; a forward pass on two 28-64 px images takes
milliseconds on a CPU. The weights are random: outputs are meaningless but deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seed.model.processors import has_torchvision, load_processor, processor_class

ARCHS = ("llava", "qwen2_vl", "qwen2_5_vl", "internvl")

# A few sentences in the register of the prompts and answers the pipeline sees, to train the BPE merges.
_CORPUS = [
    "Is there a cat in the image? Please answer yes or no.",
    "Is there a dog in the image? Answer the question using a single word or phrase.",
    "Yes, there is a person in the image. No, there is no car in the picture.",
    "Describe this image in detail. The image shows a red bus on a street next to a tree.",
    "A man is sitting on a bench with a bottle, a cup and a book on the table.",
    "There are two chairs, a laptop, a phone and a bicycle near the window.",
    "What color is the umbrella? It is blue. How many birds are there? There are three birds.",
    "The woman is holding a kite at the beach while a horse stands on the grass.",
    "Please look at the picture and answer: is the giraffe next to the elephant?",
    "yes no not the a an is are there in on of with and this that what where which",
]
_VOCAB_SIZE = 400  # byte alphabet (256) + merges; special tokens come on top

# Chat templates, written for these tiny models in the style of each original checkpoint.
# LLaVA-1.5: "USER: <image>\n{question} ASSISTANT: {answer}</s>"
_LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] + ' ' }}{% endfor %}"
    "{% else %}{{ message['role'].upper() + ': ' }}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ ' ' }}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def _chatml_template(image_text: str) -> str:
    """ChatML (Qwen2-VL, InternVL-hf): each turn is <|im_start|>role\\n...<|im_end|>\\n."""
    return (
        "{% for message in messages %}"
        "{% if loop.first and message['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
        "{{ '<|im_start|>' + message['role'] + '\n' }}"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}{{ '" + image_text + "' }}"
        "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
        "{{ '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )


_QWEN_TEMPLATE = _chatml_template("<|vision_start|><|image_pad|><|vision_end|>")
_INTERNVL_TEMPLATE = _chatml_template("<IMG_CONTEXT>\n")

# Sizes of the tiny towers (shared by all archs where the field exists).
_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
_VISION_WIDTH = 32


def _train_bpe(special_tokens: list[str]) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on `_CORPUS`; special tokens get ids 0..k-1."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE + len(special_tokens),
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer=trainer)
    return tokenizer


def build_tokenizer(arch: str) -> Any:
    """The tiny tokenizer of ``arch``: a `PreTrainedTokenizerFast` with that family's special tokens."""
    from transformers import PreTrainedTokenizerFast

    _check_arch(arch)
    if arch == "llava":
        named = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
        extra: dict[str, str] | list[str] = {"image_token": "<image>"}
        kwargs: dict[str, Any] = {"add_bos_token": True}
    else:
        named = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
        kwargs = {}
        if arch == "internvl":
            extra = {
                "start_image_token": "<img>",
                "end_image_token": "</img>",
                "context_image_token": "<IMG_CONTEXT>",
                "video_token": "<video>",
            }
        else:
            # Qwen2-VL lists its extra tokens without names; the processor falls back to <|image_pad|>.
            extra = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    chat = [] if arch == "llava" else ["<|im_start|>"]
    specials = list(named.values()) + chat + list(extra.values() if isinstance(extra, dict) else extra)
    backend = _train_bpe(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, extra_special_tokens=extra, model_max_length=2048, **named, **kwargs
    )


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        from seed.errors import ConfigError

        raise ConfigError(f"tiny model arch {arch!r} is unknown; choose one of {', '.join(ARCHS)}")


def _text_kwargs(tokenizer: Any) -> dict[str, Any]:
    """Language-model sizes plus the tokenizer's vocabulary size and special token ids."""
    return {
        **_TEXT,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _build_llava(tokenizer: Any) -> tuple[Any, Any]:
    """LLaVA-1.5 layout: CLIP vision tower (32 px, 8 px patches, CLS dropped) -> MLP projector -> Llama."""
    import transformers as tf

    image_size, patch = 32, 8
    n_tokens = (image_size // patch) ** 2
    vision = tf.CLIPVisionConfig(
        hidden_size=_VISION_WIDTH,
        intermediate_size=2 * _VISION_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        projection_dim=32,
    )
    config = tf.LlavaConfig(
        vision_config=vision,
        text_config=tf.LlamaConfig(**_text_kwargs(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=n_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    image_processor = tf.LlavaImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = tf.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_LLAVA_TEMPLATE,
    )
    return tf.LlavaForConditionalGeneration(config), processor


def _build_qwen2_vl(tokenizer: Any, version: str) -> tuple[Any, Any]:
    """Qwen2-VL / Qwen2.5-VL layout: native-resolution ViT (8 px patches, 2x2 merge) -> Qwen2 with M-RoPE."""
    import transformers as tf

    patch, merge = 8, 2
    head_dim = _TEXT["hidden_size"] // _TEXT["num_attention_heads"]
    half = head_dim // 2  # M-RoPE splits the rotary half-dimension into (temporal, height, width) sections
    rope = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [half - 2 * (half // 3)] + [half // 3] * 2,
    }
    ids = {
        name: tokenizer.convert_tokens_to_ids(tok)
        for name, tok in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    text = {**_text_kwargs(tokenizer), "rope_parameters": rope}
    vision_common = {
        "depth": 2,
        "num_heads": 2,
        "patch_size": patch,
        "spatial_merge_size": merge,
        "temporal_patch_size": 2,
    }
    if version == "qwen2_vl":
        config = tf.Qwen2VLConfig(
            vision_config=tf.Qwen2VLVisionConfig(
                **vision_common, embed_dim=_VISION_WIDTH, mlp_ratio=2, hidden_size=_TEXT["hidden_size"]
            ),
            text_config=tf.Qwen2VLTextConfig(**text),
            **ids,
        )
        model_cls, processor_cls = tf.Qwen2VLForConditionalGeneration, tf.Qwen2VLProcessor
    else:
        config = tf.Qwen2_5_VLConfig(
            vision_config=tf.Qwen2_5_VLVisionConfig(
                **vision_common,
                hidden_size=_VISION_WIDTH,
                intermediate_size=2 * _VISION_WIDTH,
                out_hidden_size=_TEXT["hidden_size"],
                window_size=2 * patch * merge,
                fullatt_block_indexes=[1],
            ),
            text_config=tf.Qwen2_5_VLTextConfig(**text),
            **ids,
        )
        model_cls, processor_cls = tf.Qwen2_5_VLForConditionalGeneration, tf.Qwen2_5_VLProcessor
    factor = patch * merge
    image_processor = tf.Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=merge,
        temporal_patch_size=2,
        min_pixels=(2 * factor) ** 2,
        max_pixels=(4 * factor) ** 2,
    )
    video_processor = None
    if has_torchvision():
        video_processor = tf.Qwen2VLVideoProcessor(
            patch_size=patch,
            merge_size=merge,
            temporal_patch_size=2,
            min_pixels=(2 * factor) ** 2,
            max_pixels=(4 * factor) ** 2,
        )
    processor = processor_class(processor_cls)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=_QWEN_TEMPLATE,
    )
    return model_cls(config), processor


def _build_internvl(tokenizer: Any) -> tuple[Any, Any]:
    """InternVL-hf layout: InternViT (32 px tiles, 4 px patches) -> pixel shuffle 0.5 -> MLP -> Qwen2."""
    import transformers as tf

    tile, patch, ratio = 32, 4, 0.5
    n_tokens = int((tile // patch) ** 2 * ratio**2)
    vision = tf.InternVLVisionConfig(
        hidden_size=_VISION_WIDTH,
        intermediate_size=2 * _VISION_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=tile,
        patch_size=patch,
    )
    config = tf.InternVLConfig(
        vision_config=vision,
        text_config=tf.Qwen2Config(**_text_kwargs(tokenizer)),
        image_token_id=tokenizer.context_image_token_id,
        image_seq_length=n_tokens,
        downsample_ratio=ratio,
        tie_word_embeddings=False,
    )
    image_processor = tf.GotOcr2ImageProcessorPil(
        size={"height": tile, "width": tile}, crop_to_patches=True, min_patches=1, max_patches=2
    )
    video_processor = (
        tf.InternVLVideoProcessor(size={"height": tile, "width": tile}) if has_torchvision() else None
    )
    processor = processor_class(tf.InternVLProcessor)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_length=n_tokens,
        chat_template=_INTERNVL_TEMPLATE,
    )
    return tf.InternVLForConditionalGeneration(config), processor


def build_tiny(arch: str, seed: int = 0) -> tuple[Any, Any]:
    """A tiny random ``(model, processor)`` pair of ``arch`` (one of `ARCHS`), in eval mode, float32.

    The same ``seed`` gives the same weights; nothing is downloaded.
    """
    import torch

    _check_arch(arch)
    tokenizer = build_tokenizer(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "llava":
            model, processor = _build_llava(tokenizer)
        elif arch == "internvl":
            model, processor = _build_internvl(tokenizer)
        else:
            model, processor = _build_qwen2_vl(tokenizer, arch)
    tokenizer.padding_side = "right"
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval(), processor


def save_tiny(arch: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny ``arch`` model and write model + processor with `save_pretrained` into ``out_dir``.

    The folder loads back with ``AutoModelForImageTextToText.from_pretrained`` and
    ``AutoProcessor.from_pretrained`` (no remote code); without torchvision, Qwen2-VL and InternVL
    processors load through `load_processor` (`load_tiny` does both).
    """
    out_dir = Path(out_dir)
    model, processor = build_tiny(arch, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def load_tiny(path: str | Path) -> tuple[Any, Any]:
    """Load a folder written by `save_tiny` (or any local checkpoint): ``(model, processor)``, eval mode."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(Path(path))
    return model.eval(), load_processor(path)
