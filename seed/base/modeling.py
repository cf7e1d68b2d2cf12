"""The embedded base model: a small LLaVA-architecture vision-language model built from transformers classes.

```
 image (48x48 RGB) --CLIP-style ViT (patch 8)--> 36 patch features --2-layer MLP projector--+
                                                                                            v
 "USER: <image>x36 Is there a fork in the image? ... ASSISTANT:" --> Llama-style decoder --> "Yes"
```

Nothing here is downloaded: the word-level tokenizer is built from the world's own text, the image
processor is CLIP's (PIL backend), and the chat template follows the LLaVA-1.5 conversation format
(``USER: <image>\\n{question} ASSISTANT: {answer}</s>``). The result is saved with ``save_pretrained`` in
safetensors and loads back through ``AutoModelForImageTextToText`` / ``AutoProcessor`` exactly as a
real checkpoint such as ``llava-hf/llava-1.5-7b-hf`` does; everything downstream uses only those two
entry points.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from seed.params import check_range

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, IMAGE_TOKEN]

# The LLaVA-1.5 conversation format, written as a chat template over the multimodal message schema
# ({"role": ..., "content": [{"type": "image"}, {"type": "text", "text": ...}]}).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' }}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
    "{{ ' ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' }}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
    "{{ '</s>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_WORD_RE = re.compile(r"<image>|\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """Split text the way the word-level tokenizer does: words and single punctuation marks."""
    return _WORD_RE.findall(text)


@dataclass
class ModelConfig:
    """Shape of the embedded base model (params.yaml section ``pretrain``, key ``model``)."""

    image_size: int = 48
    patch_size: int = 8
    vision_hidden: int = 128
    vision_layers: int = 3
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_intermediate: int = 384
    max_positions: int = 512
    vision_feature_layer: int = -2  # as LLaVA-1.5 (see LOG.md: -1 with lr 2e-3 collapsed to "Yes")

    def __post_init__(self) -> None:
        for name in (
            "image_size",
            "patch_size",
            "vision_hidden",
            "vision_layers",
            "vision_heads",
            "text_hidden",
            "text_layers",
            "text_heads",
            "text_intermediate",
            "max_positions",
        ):
            check_range("pretrain.model", name, getattr(self, name), lo=1)
        if self.vision_feature_layer > -1 or self.vision_feature_layer < -max(2, self.vision_layers):
            from seed.errors import ConfigError

            raise ConfigError(
                f"pretrain.model.vision_feature_layer = {self.vision_feature_layer} must be in "
                f"[-{max(2, self.vision_layers)}, -1] (a 1-layer tower uses its only layer)"
            )
        if self.image_size % self.patch_size:
            check_range("pretrain.model", "patch_size", self.patch_size, hi=0)  # raises with the key named
        if self.vision_hidden % self.vision_heads or self.text_hidden % self.text_heads:
            from seed.errors import ConfigError

            raise ConfigError(
                "pretrain.model: vision_hidden/text_hidden must be divisible by the head counts"
            )

    @property
    def num_image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def build_tokenizer(texts: Iterable[str]):
    """A word-level fast tokenizer whose vocabulary is every word and mark in ``texts``.

    Words are kept case-sensitive; decoding joins words with spaces and removes the space before
    punctuation ("Yes ." -> "Yes.").
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words: set[str] = set()
    for text in texts:
        words.update(split_words(text))
    words.update(split_words("USER: ASSISTANT: \n"))
    words -= set(SPECIAL_TOKENS)
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + sorted(words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"\w+|[^\w\s]"), behavior="isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="right",
        model_max_length=1024,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_processor(tokenizer, config: ModelConfig):
    """A LlavaProcessor: CLIP image normalisation (PIL backend) + the tokenizer + the chat template."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
        do_center_crop=True,
        resample=3,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=config.patch_size,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )


def build_model(config: ModelConfig, tokenizer, seed: int = 0):
    """A randomly initialised LlavaForConditionalGeneration sized by ``config`` for ``tokenizer``."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(
        hidden_size=config.vision_hidden,
        intermediate_size=config.vision_hidden * 2,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden,
        intermediate_size=config.text_intermediate,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads,
        max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    llava = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=max(config.vision_feature_layer, -config.vision_layers),
        image_seq_length=config.num_image_tokens,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(llava)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
