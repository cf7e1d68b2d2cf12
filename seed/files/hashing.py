"""Content hashes of what stage `purify` reads: the model folder and the unlabelled split.

Both go into the run key of every shard sidecar (`seed.files.shards`) and into the targets'
manifest, so a shard is reused only by a run on the same model and data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from seed.errors import DataError
from seed.files.samples import IMAGES, INSTRUCTIONS


def model_hash(model_path: str | Path) -> str:
    """Content hash of a model folder (a hub id resolves to its local snapshot when one is cached)."""
    from seed.files.targets import content_hash

    local = Path(model_path)
    if not local.exists():
        try:
            from huggingface_hub import snapshot_download

            local = Path(snapshot_download(str(model_path), local_files_only=True))
        except Exception as exc:  # not cached: name the id, as the loader would
            raise DataError(model_path, f"model not found locally: {exc}") from exc
    return content_hash(local)


def data_hash(data_dir: str | Path) -> str:
    """sha256 over what stage `purify` reads: ``seed/instructions.json`` and ``images/seed/``."""
    from seed.files.targets import content_hash

    data_dir = Path(data_dir)
    parts = [f"{INSTRUCTIONS.as_posix()}\0{content_hash(data_dir / INSTRUCTIONS)}"]
    if (data_dir / IMAGES).is_dir():
        parts.append(f"{IMAGES.as_posix()}\0{content_hash(data_dir / IMAGES)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
