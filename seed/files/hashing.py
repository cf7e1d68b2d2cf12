"""Content hashes: of any file or folder (`content_hash`), and of what stage `purify` reads, the model
folder and the unlabelled split.

The latter two go into the run key of every shard sidecar (`seed.files.shards`) and into the targets'
manifest, so a shard is reused only by a run on the same model and data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from seed.errors import DataError
from seed.files.samples import IMAGES, INSTRUCTIONS

_CHUNK = 1 << 20


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(path_or_dir: str | Path) -> str:
    """sha256 (hex) of a file's bytes, or of a folder's content.

    For a file it equals ``sha256sum FILE``. For a folder it is the sha256 of the lines
    ``"<relative posix path>\\0<sha256 of the file>\\n"`` over every file below it (hidden files
    included, symlinks followed), sorted by relative path: renaming, adding, removing or editing
    any file changes it; timestamps and the folder's own location do not.
    """
    path = Path(path_or_dir)
    if path.is_file():
        return _file_sha256(path)
    if not path.is_dir():
        raise DataError(path, "no such file or folder to hash")
    digest = hashlib.sha256()
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix()}\0{_file_sha256(file)}\n".encode())
    return digest.hexdigest()


def model_hash(model_path: str | Path) -> str:
    """Content hash of a model folder (a hub id resolves to its local snapshot when one is cached)."""
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
    data_dir = Path(data_dir)
    parts = [f"{INSTRUCTIONS.as_posix()}\0{content_hash(data_dir / INSTRUCTIONS)}"]
    if (data_dir / IMAGES).is_dir():
        parts.append(f"{IMAGES.as_posix()}\0{content_hash(data_dir / IMAGES)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
