"""Checks of user-supplied inputs shared by every stage: file names, prompts and images.

Data files name other files (a POPE line its image, a conversation record its image, a CHAIR list
its files) and carry the text the model reads. Before anything is loaded or written, each name must
stay inside its folder, each prompt must be non-empty and of sane length, and each image must decode
to 8-bit RGB within a side limit. Every failure is a `DataError` naming the file, the row and the
field, so that a bad line ends in one readable message instead of a traceback, a read outside the
data folder, or a model run out of memory.

    check_relative_name(name, source, field, row)   "eval_000012.png" ok; "../x.png", "/etc/x" rejected
    resolve_inside(root, name, source, field, row)  root / name, also rejecting symlinks that lead out
    check_prompt(text, source, field, row)          non-empty, at most MAX_PROMPT_CHARS characters
    image_mode_problem(mode)                        None for modes with a faithful 8-bit RGB form
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from seed.errors import DataError

# A question, instruction or caption prompt: LLaVA-style prompts are a few hundred characters; the
# cap keeps one bad line from building a sequence of hundreds of thousands of tokens (out of memory).
MAX_PROMPT_CHARS = 4000
# A training answer (gpt turn): detailed descriptions run to a few thousand characters.
MAX_ANSWER_CHARS = 16000
# Largest image side accepted at run time (evaluate, purify, distill, answer). `seed validate` has its
# own, stricter data-quality limit (params.yaml `validate.max_image_side`).
DEFAULT_MAX_IMAGE_SIDE = 4096
# 8-bit modes whose conversion to RGB keeps the picture. 16-bit and float modes (I;16, I, F) are
# clipped by PIL to white or black, and are therefore refused rather than silently destroyed.
RGB_CONVERTIBLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})


# A plain file name such as "COCO_val2014_000000310196.jpg": no separator, no leading dot.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def read_json(path: str | Path) -> Any:
    """The value of a JSON file (a UTF-8 byte-order mark is allowed).

    Raises `DataError` naming the file when it is missing, unreadable, not UTF-8, not JSON or nested
    too deeply to parse.
    """
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError as exc:
        raise DataError(path, "file not found") from exc
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte {exc.start})") from exc
    except (ValueError, RecursionError) as exc:
        raise DataError(path, f"not valid JSON: {exc}") from exc


def check_relative_name(name: object, source: str | Path, field: str, row: int | None = None) -> str:
    """Return ``name`` if it is a non-empty relative path that cannot climb out of its folder.

    Rejected (`DataError` naming ``source``, ``row`` and ``field``): a non-string, an empty name, an
    absolute path (POSIX or Windows, drive letters included), any ``..`` component, a NUL byte.
    """
    if isinstance(name, str) and _PLAIN_NAME.fullmatch(name):  # the common case, checked fast
        return name
    if not isinstance(name, str):
        raise DataError(source, f"must be a file name (a string), got {type(name).__name__}", field, row)
    if not name.strip():
        raise DataError(source, "file name is empty", field, row)
    if "\0" in name:
        raise DataError(source, "file name holds a NUL byte", field, row)
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise DataError(
            source, f"absolute path {name!r} is not allowed; give a name relative to the folder", field, row
        )
    if ".." in posix.parts or ".." in windows.parts:
        raise DataError(source, f"path {name!r} climbs out of its folder ('..')", field, row)
    return name


def resolve_inside(
    root: str | Path, name: object, source: str | Path, field: str, row: int | None = None
) -> Path:
    """``root / name`` after `check_relative_name`, refusing a symlink that resolves outside ``root``."""
    root = Path(root)
    path = root / check_relative_name(name, source, field, row)
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise DataError(source, f"cannot resolve {name!r}: {exc}", field, row) from exc
    if not inside:
        raise DataError(source, f"path {name!r} resolves outside {root} (a symlink leads out)", field, row)
    return path


def check_prompt(
    text: object,
    source: str | Path,
    field: str,
    row: int | None = None,
    max_chars: int = MAX_PROMPT_CHARS,
) -> str:
    """Return ``text`` if it is a string with something to read and at most ``max_chars`` characters."""
    if not isinstance(text, str):
        raise DataError(source, f"must be a string, got {type(text).__name__}", field, row)
    if not text.strip():
        raise DataError(source, "prompt is empty", field, row)
    if len(text) > max_chars:
        raise DataError(source, f"text is {len(text)} characters long; the limit is {max_chars}", field, row)
    return text


def image_mode_problem(mode: str) -> str | None:
    """None when an image of PIL ``mode`` converts to RGB faithfully, else the reason it does not."""
    if mode in RGB_CONVERTIBLE_MODES:
        return None
    return (
        f"image mode {mode!r} (16-bit, float or exotic) has no faithful 8-bit RGB form; "
        "save it as 8-bit RGB (or grayscale)"
    )


def image_size_problem(size: tuple[int, int], max_side: int) -> str | None:
    """None when both sides are at most ``max_side`` pixels (and positive), else the reason."""
    width, height = size
    if width <= 0 or height <= 0:
        return f"image has no pixels ({width}x{height})"
    if max(width, height) > max_side:
        return (
            f"image is {width}x{height} px, larger than the limit of {max_side} px per side (max_image_side)"
        )
    return None


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def require_safetensors(folder: str | Path, kind: str) -> None:
    """Raise `DataError` unless ``folder`` holds its weights as safetensors.

    ``kind`` is "model" (``*.safetensors`` or a ``*.safetensors.index.json``) or "adapter"
    (``adapter_model.safetensors``). A folder whose only weights are pickle files (``*.bin``,
    ``*.pt``, ...) is refused: unpickling can run arbitrary code, and seed never loads one.
    """
    folder = Path(folder)
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if kind == "adapter":
        found = "adapter_model.safetensors" in names
    else:
        found = any(n.endswith((".safetensors", ".safetensors.index.json")) for n in names)
    if found:
        return
    pickled = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickled:
        raise DataError(
            folder,
            f"{kind} weights only as pickle ({', '.join(pickled[:3])}); seed loads safetensors only: "
            "re-save with save_pretrained(..., safe_serialization=True)",
        )
    raise DataError(folder, f"no {kind} weights (*.safetensors) in the folder")
