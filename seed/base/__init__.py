"""The embedded base model's scaffolding: what a user with a hub checkpoint never needs.

- `modeling`: the small LLaVA-architecture model, its tokenizer and processor, built from scratch.
- `vision_pretrain`: stage 0 of `seed pretrain`, the vision tower learning the objects.
- `tiny`: tiny random configs of the real architectures (LLaVA, Qwen2-VL, InternVL) for tests and
  benchmarks.
"""
