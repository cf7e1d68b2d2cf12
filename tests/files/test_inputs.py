"""seed/files/inputs.py: names that stay in their folder, prompts of sane length, images with an 8-bit RGB form."""

from __future__ import annotations

import pytest
from PIL import Image

from seed.errors import DataError
from seed.files.inputs import (
    MAX_PROMPT_CHARS,
    check_prompt,
    check_relative_name,
    image_mode_problem,
    image_size_problem,
    require_safetensors,
    resolve_inside,
)


@pytest.mark.parametrize("name", ["a.png", "sub/a.png", "COCO_val2014_000000310196.jpg", "é.png", "a..b.png"])
def test_relative_names_inside_the_folder_pass(name):
    assert check_relative_name(name, "f.json", "image") == name


@pytest.mark.parametrize(
    "name, words",
    [
        ("../a.png", "climbs out"),
        ("sub/../../a.png", "climbs out"),
        ("..\\a.png", "climbs out"),
        ("/etc/passwd", "absolute"),
        ("\\\\server\\share\\a.png", "absolute"),
        ("C:\\a.png", "absolute"),
        ("C:a.png", "absolute"),
        ("", "empty"),
        ("  ", "empty"),
        ("a\0.png", "NUL"),
        (3, "string"),
        (None, "string"),
        (["a.png"], "string"),
    ],
)
def test_names_that_could_leave_the_folder_are_refused(name, words):
    with pytest.raises(DataError, match=words) as info:
        check_relative_name(name, "data/pope.json", "image", 4)
    assert info.value.path == "data/pope.json" and info.value.field == "image" and info.value.row == 4


def test_resolve_inside_refuses_a_symlink_that_leads_out(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    (root / "ok.png").write_bytes(b"x")
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    assert resolve_inside(root, "ok.png", "f", "image") == root / "ok.png"
    assert (
        resolve_inside(root, "missing.png", "f", "image") == root / "missing.png"
    )  # existence is checked later
    with pytest.raises(DataError, match="resolves outside"):
        resolve_inside(root, "link.png", "f", "image")


def test_prompts():
    assert check_prompt("Is there a dog?", "f", "text") == "Is there a dog?"
    assert check_prompt("x" * MAX_PROMPT_CHARS, "f", "text")
    for bad, words in [
        ("", "empty"),
        (" \n\t", "empty"),
        ("x" * (MAX_PROMPT_CHARS + 1), "limit"),
        (5, "string"),
    ]:
        with pytest.raises(DataError, match=words):
            check_prompt(bad, "f", "text", 1)
    with pytest.raises(DataError, match="limit is 10"):
        check_prompt("x" * 11, "f", "text", max_chars=10)


def test_image_modes_and_sizes():
    for mode in ("RGB", "L", "P", "RGBA", "LA", "1", "CMYK", "YCbCr"):
        assert image_mode_problem(mode) is None
    for mode in ("I;16", "I", "F", "I;16B", "HSV"):
        assert mode in image_mode_problem(mode)
    assert image_size_problem((640, 480), 640) is None
    assert "641x480" in image_size_problem((641, 480), 640)
    assert "no pixels" in image_size_problem((0, 5), 640)


def test_open_image_refuses_what_it_cannot_show_faithfully(tmp_path):
    from seed.model.generate import open_image

    Image.new("I;16", (4, 4), 40000).save(tmp_path / "deep.png")
    with pytest.raises(DataError, match="I;16"):
        open_image(tmp_path / "deep.png")
    Image.new("RGB", (30, 10)).save(tmp_path / "wide.png")
    assert open_image(tmp_path / "wide.png", max_side=30).size == (30, 10)
    with pytest.raises(DataError, match="30x10 px"):
        open_image(tmp_path / "wide.png", max_side=29)


def test_require_safetensors(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    require_safetensors(tmp_path, "model")
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "model.safetensors.index.json").write_text("{}")
    require_safetensors(sharded, "model")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(DataError, match="pytorch_model.bin.*safetensors only"):
        require_safetensors(pickled, "model")
    with pytest.raises(DataError, match="no adapter weights"):
        require_safetensors(tmp_path / "sharded", "adapter")
