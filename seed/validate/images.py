"""Check image files: present, decodable (a corrupt or truncated file fails), 8-bit RGB-convertible, small enough.

Each file is read once; its bytes are hashed (SHA-256) for the train/eval disjointness check and
decoded from memory with PIL. Results are cached by path, because POPE, CHAIR and the annotations
refer to the same evaluation images many times.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from seed.errors import DataError
from seed.files.inputs import check_relative_name, image_mode_problem

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class ImageInfo:
    """What one image file turned out to be: ``problem`` is None for a usable image."""

    problem: str | None
    size: tuple[int, int] | None = None
    digest: str | None = None


def inspect_image(path: Path, max_side: int) -> ImageInfo:
    """Read, hash and fully decode one image; report the first problem found (or None)."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ImageInfo("missing")
    except IsADirectoryError:
        return ImageInfo("is a folder, not an image file")
    except OSError as exc:
        return ImageInfo(f"cannot read file ({exc.strerror or exc})")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            if max(size) > max_side:
                return ImageInfo(f"too large: {size[0]}x{size[1]} > {max_side} px", size, digest)
            mode_problem = image_mode_problem(image.mode)
            if mode_problem is not None:
                return ImageInfo(mode_problem, size, digest)
            image.load()
    except UnidentifiedImageError:
        return ImageInfo("does not decode (not a recognised image format)", None, digest)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
        return ImageInfo(f"does not decode ({exc})", None, digest)
    return ImageInfo(None, size, digest)


def image_rule(where: str, max_side: int) -> str:
    """The words for the image check, e.g. "the image exists under images/eval/, decodes, ..."."""
    return f"the image exists under {where}/, decodes, has an 8-bit RGB form, sides <= {max_side} px"


class ImageChecker:
    """Inspect image files at most once each; ``count`` is how many distinct files were read."""

    def __init__(self, max_side: int):
        self.max_side = max_side
        self._seen: dict[Path, ImageInfo] = {}

    @property
    def count(self) -> int:
        return len(self._seen)

    def inspect(self, path: Path) -> ImageInfo:
        """The (cached) `ImageInfo` of ``path``."""
        info = self._seen.get(path)
        if info is None:
            info = self._seen[path] = inspect_image(path, self.max_side)
        return info

    def problem(self, folder: Path, name: object, label: str) -> str | None:
        """None when ``folder/name`` is a usable image, else "<label>/<name>: <problem>"."""
        if name is None:
            return None  # reported by the column's not-null check
        try:
            check_relative_name(name, label, "image")  # no '..', not absolute (POSIX or Windows), no NUL
        except DataError:
            return f"not a relative image file name: {name!r}"
        info = self.inspect(folder / name)
        return None if info.problem is None else f"{label}/{name}: {info.problem}"
