"""On-disk formats and input checks: everything that reads or writes a file the user sees.

- `atomic`: JSON, JSONL and folder writes that never leave half a file.
- `inputs`: path, prompt and image checks that name the file and field; one JSON reader.
- `conversation`: LLaVA-format conversations and the chat-message form models read.
- `targets`: the purified targets' sparse safetensors shards and their manifest.
- `checkpoint`: resumable distillation checkpoints (safetensors + JSON, no pickle).
"""
