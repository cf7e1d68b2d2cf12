"""On-disk formats and input checks: everything that reads or writes a file the user sees.

- `atomic`: JSON, JSONL and folder writes that never leave half a file.
- `inputs`: path, prompt and image checks that name the file and field; one JSON reader.
- `conversation`: LLaVA-format conversations and the chat-message form models read.
- `samples`: the unlabelled split as single-turn (image, instruction) samples.
- `hashing`: content hashes of the model folder and of the unlabelled split.
- `targets`: the purified targets' sparse safetensors shards and their manifest.
- `shards`: a targets folder as stage `purify` writes it: shard names, samples sidecars, reuse.
- `checkpoint`: resumable distillation checkpoints (safetensors + JSON, no pickle).
"""
