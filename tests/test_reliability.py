"""Bad input against the real `seed` command: one class of fault per test (docs/reliability.md).

Every fault must end in one ``error: ...`` line on stderr that names the file and the field (or
key), a non-zero exit status, no traceback, and nothing written where the command writes. The
command runs in-process (`seed.cli.main`) on a tiny world and a tiny random model; every check here
fails before a model is loaded or a file is written, so each test takes well under a second or two.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from seed.base.tiny import save_tiny
from seed.cli import main
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

SEED = Path(__file__).resolve().parents[1] / "seed"
FLOWS = SEED.parent / "flows"


@pytest.fixture(scope="module")
def world_template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reliability") / "world"
    synthesize(
        out, WorldConfig(n_train=6, n_seed=3, n_pope_images=3, n_mme_images=2, n_chair_images=2), False
    )
    return out


@pytest.fixture(scope="module")
def model_template(tmp_path_factory) -> Path:
    return save_tiny("llava", tmp_path_factory.mktemp("reliability") / "model")


@pytest.fixture
def world(world_template, tmp_path) -> Path:
    return Path(shutil.copytree(world_template, tmp_path / "world"))


@pytest.fixture
def model(model_template, tmp_path) -> Path:
    return Path(shutil.copytree(model_template, tmp_path / "model"))


def run_seed(capsys, *argv: object) -> tuple[int, str]:
    """Exit status and stderr of ``seed ARGV``."""
    status = main([str(a) for a in argv])
    return status, capsys.readouterr().err


def assert_one_line_error(status: int, err: str, *named: object) -> None:
    """Exit 2, no traceback, and a last line ``error: ...`` that names every item of ``named``."""
    assert status == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for item in named:
        assert str(item) in last, f"{item!r} not named in: {last}"


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def pope_file(world: Path, split: str = "random") -> Path:
    return world / "pope" / f"world_pope_{split}.json"


def edit_pope(world: Path, line: int, **changes: object) -> Path:
    """Change keys of one POPE question (0-based line) of the random split; returns the file."""
    path = pope_file(world)
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows[line].update(changes)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def edit_instructions(world: Path, **changes: object) -> Path:
    """Change keys of the first record of seed/instructions.json; returns the file."""
    path = world / "seed" / "instructions.json"
    records = json.loads(path.read_text())
    records[0].update(changes)
    path.write_text(json.dumps(records))
    return path


def first_pope_image(world: Path) -> Path:
    return world / "images" / "eval" / json.loads(pope_file(world).read_text().splitlines()[0])["image"]


def seed_eval(capsys, model: Path, world: Path, out: Path, *extra: object) -> tuple[int, str]:
    return run_seed(
        capsys, "-q", "evaluate", "--model", model, "--data", world, "--out", out, "--methods", "base", *extra
    )


def seed_purify(capsys, model: Path, world: Path, out: Path) -> tuple[int, str]:
    return run_seed(
        capsys, "-q", "purify", "--model", model, "--data", world, "--out", out, "--max-new-tokens", "2"
    )


def decompression_bomb(path: Path, side: int = 20000) -> Path:
    """A valid PNG header claiming side x side pixels (400 M), with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * side))
        + chunk(b"IEND", b"")
    )
    return path


# --- corrupt, truncated, non-RGB and oversized images ----------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "folder"])
def test_broken_eval_image_stops_eval_before_anything_is_written(capsys, model, world, tmp_path, damage):
    image = first_pope_image(world)
    if damage == "garbage":
        image.write_bytes(b"this is not a PNG")
    elif damage == "truncated":
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    elif damage == "empty":
        image.write_bytes(b"")
    else:
        image.unlink()
        image.mkdir()
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, image)
    assert files_under(tmp_path / "reports") == []


@pytest.mark.parametrize("mode, value", [("I;16", 40000), ("F", 0.5), ("I", 70000)])
def test_image_without_8bit_rgb_form_is_refused(capsys, model, world, tmp_path, mode, value):
    image = first_pope_image(world)
    Image.new(mode, (48, 48), value).save(image.with_suffix(".tiff"), format="TIFF")
    image.with_suffix(".tiff").rename(image)  # PNG name, TIFF bytes: PIL reads by content
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, image, mode)
    assert files_under(tmp_path / "reports") == []


def test_grayscale_and_palette_images_are_accepted(tmp_path):
    from seed.model.generate import open_image

    for mode in ("L", "P", "RGBA", "1", "CMYK"):
        path = tmp_path / f"{mode}.png" if mode != "CMYK" else tmp_path / "cmyk.jpg"
        Image.new(mode, (8, 6)).save(path)
        image = open_image(path)
        assert image.mode == "RGB" and image.size == (8, 6)


def test_validate_reports_images_without_8bit_rgb_form(tmp_path):
    """`seed validate` applies the same image policy as the stages (its report names the mode)."""
    from seed.validate.images import inspect_image

    Image.new("I;16", (8, 8), 40000).save(tmp_path / "deep.png")
    Image.new("L", (8, 8)).save(tmp_path / "gray.png")
    assert "I;16" in inspect_image(tmp_path / "deep.png", max_side=64).problem
    assert inspect_image(tmp_path / "gray.png", max_side=64).problem is None
    assert "8x8" in inspect_image(tmp_path / "gray.png", max_side=4).problem


def test_image_side_limit_is_configurable(capsys, model, world, tmp_path):
    """The world's images are 48 px: a 40 px limit refuses them, naming the limit; the default accepts them."""
    status, err = seed_eval(capsys, model, world, tmp_path / "reports", "--max-image-side", "40")
    assert_one_line_error(status, err, "48x48", "40 px", "max_image_side")
    assert files_under(tmp_path / "reports") == []
    params = tmp_path / "params.yaml"
    params.write_text("evaluate:\n  max_image_side: 40\n")
    status, err = run_seed(
        capsys,
        "--params",
        params,
        "-q",
        "evaluate",
        "--model",
        model,
        "--data",
        world,
        "--out",
        tmp_path / "r2",
    )
    assert_one_line_error(status, err, "max_image_side")


def test_decompression_bomb_is_refused_before_decoding(capsys, model, tmp_path):
    bomb = decompression_bomb(tmp_path / "bomb.png")
    status, err = run_seed(
        capsys, "answer", "--model", model, "--image", bomb, "--question", "Is there a dog?"
    )
    assert_one_line_error(status, err, bomb)


def test_corrupt_image_to_answer(capsys, model, tmp_path):
    broken = tmp_path / "photo.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a JPEG")
    status, err = run_seed(
        capsys, "answer", "--model", model, "--image", broken, "--question", "Is there a dog?"
    )
    assert_one_line_error(status, err, broken, "cannot decode image")


def test_oversized_image_is_refused_by_answer(capsys, model, tmp_path):
    big = tmp_path / "wide.png"
    Image.new("RGB", (5000, 2)).save(big)
    status, err = run_seed(
        capsys, "answer", "--model", model, "--image", big, "--question", "Is there a dog?"
    )
    assert_one_line_error(status, err, big, "5000x2")
    status, err = run_seed(
        capsys,
        "answer",
        "--model",
        model,
        "--image",
        big,
        "--question",
        "Is there a dog?",
        "--max-image-side",
        "4",
    )
    assert_one_line_error(status, err, big, "limit of 4 px")


def test_corrupt_training_image_stops_pretrain(capsys, world, tmp_path):
    record = json.loads((world / "train" / "conversations.json").read_text())[0]
    image = world / "images" / "train" / record["image"]
    image.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    status, err = run_seed(
        capsys,
        "-q",
        "pretrain",
        "--data",
        world,
        "--out",
        tmp_path / "model",
        "--steps",
        "1",
        "--grounding-steps",
        "0",
        "--batch-size",
        "2",
        "--vision-steps",  # the default recipe's stage 0 and bias world read other images than data/train
        "0",
        "--bias-world",
        "false",
    )
    assert_one_line_error(status, err, image)
    assert not (tmp_path / "model").exists()


def test_corrupt_seed_image_stops_purify_without_a_manifest(capsys, model, world, tmp_path):
    record = json.loads((world / "seed" / "instructions.json").read_text())[0]
    image = world / "images" / "seed" / record["image"]
    image.write_bytes(b"GIF89a truncated")
    status, err = seed_purify(capsys, model, world, tmp_path / "targets")
    assert_one_line_error(status, err, image)
    assert files_under(tmp_path / "targets") == []  # no shard, no manifest for distill to read


# --- empty and overlong prompts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words", [("", "empty"), ("   ", "empty"), ("Is there " + "a " * 3000, "limit is 4000")]
)
def test_bad_pope_question_text(capsys, model, world, tmp_path, text, words):
    path = edit_pope(world, 1, text=text)
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, path, "row 2", "field 'text'", words)
    assert files_under(tmp_path / "reports") == []


@pytest.mark.parametrize(
    "value, words", [("<image>\n  ", "empty"), ("<image>\n" + "word " * 1000, "limit is 4000")]
)
def test_bad_instruction_stops_purify_before_the_model_loads(capsys, model, world, tmp_path, value, words):
    path = edit_instructions(world, conversations=[{"from": "human", "value": value}])
    status, err = seed_purify(capsys, model, world, tmp_path / "targets")
    assert_one_line_error(status, err, path, "row 0", "conversations.value", words)
    assert files_under(tmp_path / "targets") == []


@pytest.mark.parametrize("question, words", [("", "empty"), ("x" * 5000, "5000 characters")])
def test_bad_question_to_answer(capsys, model, world, question, words):
    status, err = run_seed(
        capsys, "answer", "--model", model, "--image", first_pope_image(world), "--question", question
    )
    assert_one_line_error(status, err, "--question", words)


def test_empty_caption_prompt_is_a_config_error(capsys, model, world, tmp_path):
    status, err = seed_eval(capsys, model, world, tmp_path / "reports", "--caption-prompt", " ")
    assert_one_line_error(status, err, "evaluate.caption_prompt")


# --- malformed JSON / JSONL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative, content, extra",
    [
        ("pope/world_pope_popular.json", '{"question_id": 1, "image": "a.png"\n', ()),
        ("pope/world_pope_random.json", "[1, 2]\n", ()),
        ("annotations.json", "{", ()),
        ("annotations.json", '{"images": [], "categories": [{"id": 1}], "annotations": []}', ()),
        ("mme/meta.json", "{x", ("--benchmarks", "mme")),
        ("mme/meta.json", '{"color/a.png": 3}', ("--benchmarks", "mme")),
        ("chair/images.json", '[{"image_id": 1}]', ("--benchmarks", "chair")),
        ("chair/images.json", "\xff\xfe", ("--benchmarks", "chair")),
        ("synonyms.txt", ", ,\n", ("--benchmarks", "chair")),
    ],
)
def test_malformed_benchmark_file_stops_eval(capsys, model, world, tmp_path, relative, content, extra):
    (world / relative).write_bytes(content.encode("latin-1") if "\xff" in content else content.encode())
    status, err = seed_eval(capsys, model, world, tmp_path / "reports", *extra)
    assert_one_line_error(status, err, world / relative)
    assert files_under(tmp_path / "reports") == []


@pytest.mark.parametrize(
    "relative, content, command",
    [
        ("seed/instructions.json", "[{", "purify"),
        ("seed/instructions.json", '{"id": 1}', "purify"),
        ("seed/instructions.json", "[" * 5000 + "]" * 5000, "purify"),
        ("train/conversations.json", "[{]", "pretrain"),
        ("train/conversations.json", '[{"id": "a", "image": "a.png", "conversations": "hi"}]', "pretrain"),
        ("pope/world_pope_adversarial.json", "not json\n", "pretrain"),
        (
            "train/conversations.json",
            json.dumps(
                [
                    {
                        "id": "a",
                        "image": "../../annotations.json",
                        "conversations": [
                            {"from": "human", "value": "<image>\nHi?"},
                            {"from": "gpt", "value": "Hi"},
                        ],
                    }
                ]
            ),
            "pretrain",
        ),
    ],
)
def test_malformed_training_file_stops_the_stage(capsys, model, world, tmp_path, relative, content, command):
    (world / relative).write_text(content)
    out = tmp_path / "out"
    if command == "purify":
        status, err = seed_purify(capsys, model, world, out)
    else:
        status, err = run_seed(
            capsys, "-q", "pretrain", "--data", world, "--out", out, "--steps", "1", "--grounding-steps", "0"
        )
    assert_one_line_error(status, err, world / relative)
    assert files_under(out) == []


def test_malformed_answers_file_in_pope_score(capsys, world, tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": 1, "text": "yes"}\n{"question_id": 2, "text": \n')
    status, err = run_seed(capsys, "pope-score", "--questions", pope_file(world), "--answers", answers)
    assert_one_line_error(status, err, answers, "row 2")


# --- unknown POPE labels and unpaired MME questions -------------------------------------------------------


@pytest.mark.parametrize("label", ["maybe", "Yes", "", None])
def test_unknown_pope_label(capsys, model, world, tmp_path, label):
    path = edit_pope(world, 2, label=label)
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, path, "row 3", "field 'label'")
    assert files_under(tmp_path / "reports") == []
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": 1, "text": "yes"}\n')
    status, err = run_seed(capsys, "pope-score", "--questions", path, "--answers", answers)
    assert_one_line_error(status, err, path, "label")


@pytest.mark.parametrize(
    "fault", ["image without questions", "questions without image", "one question", "two yes"]
)
def test_unpaired_mme_questions(capsys, model, world, tmp_path, fault):
    text = sorted((world / "mme" / "count").glob("*.txt"))[0]
    image = text.with_suffix(".png")
    if fault == "image without questions":
        text.unlink()
        named = image
    elif fault == "questions without image":
        image.unlink()
        named = text
    elif fault == "one question":
        text.write_text(text.read_text().splitlines()[0] + "\n")
        named = text
    else:
        question = text.read_text().splitlines()[0].rsplit("\t", 1)[0]
        text.write_text(f"{question}\tYes\n{question}?\tYes\n")
        named = text
    status, err = seed_eval(capsys, model, world, tmp_path / "reports", "--benchmarks", "mme")
    assert_one_line_error(status, err, named)
    assert files_under(tmp_path / "reports") == []


# --- params.yaml values out of range (and of the wrong type) ----------------------------------------------


@pytest.mark.parametrize(
    "params, command, key",
    [
        ("world:\n  cooccurrence: 1.5\n", "synth", "world.cooccurrence"),
        ("validate:\n  max_image_side: 0\n", "validate", "validate.max_image_side"),
        ("pretrain:\n  lr: 0\n", "pretrain", "pretrain.lr"),
        ("pretrain:\n  lr: 1e-3\n", "pretrain", "pretrain.lr"),
        ("purify:\n  top_k: 0\n", "purify", "purify.top_k"),
        ("purify:\n  flag_tau: 2\n", "purify", "purify.flag_tau"),
        ("distill:\n  lr: -1\n", "distill", "distill.lr"),
        ("distill:\n  adapter:\n    lora_r: 0\n", "distill", "distill.adapter.lora_r"),
        ("evaluate:\n  cd_beta: 3\n", "evaluate", "evaluate.cd_beta"),
        ("evaluate:\n  sample_seeds: 3\n", "evaluate", "evaluate.sample_seeds"),
        ("evaluate:\n  batch_size: true\n", "evaluate", "evaluate.batch_size"),
        ("evaluate:\n  noise_step: .nan\n", "evaluate", "evaluate.noise_step"),
        ("evaluate: [1, 2]\n", "evaluate", "'evaluate'"),
        ("evaluate:\n  cd_gamma: 1\n", "evaluate", "evaluate.cd_gamma"),
        ("evaluate: [\n", "evaluate", "line 2"),
    ],
)
def test_bad_params_value_names_the_key(capsys, model, world, tmp_path, params, command, key):
    path = tmp_path / "params.yaml"
    path.write_text(params)
    out = tmp_path / "out"
    argv = {
        "synth": ["data", "synth", "--out", out],
        "validate": ["validate", world],
        "pretrain": ["pretrain", "--data", world, "--out", out],
        "purify": ["purify", "--model", model, "--data", world, "--out", out],
        "distill": ["distill", "--model", model, "--data", world, "--targets", tmp_path, "--out", out],
        "evaluate": ["evaluate", "--model", model, "--data", world, "--out", out],
    }[command]
    if command == "validate":  # `seed validate` reads its limit from --max-image-side, checked by the stage
        from seed.errors import ConfigError
        from seed.stages import load_stage_config

        with pytest.raises(ConfigError, match=re.escape(key)):
            load_stage_config("validate", path)
        return
    status, err = run_seed(capsys, "--params", path, *argv)
    assert_one_line_error(status, err, path, key)
    assert files_under(out) == []


# --- model folders: no processor files, no image tokens, pickle weights, missing ---------------------------


@pytest.mark.parametrize(
    "remove, words",
    [
        (
            ("processor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"),
            "processor",
        ),
        (("chat_template.jinja",), "chat template"),
        (("tokenizer.json",), "cannot load"),
        (("model.safetensors",), "no model weights"),
    ],
)
def test_incomplete_model_folder(capsys, model, world, tmp_path, remove, words):
    for name in remove:
        (model / name).unlink()
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, model, words)
    assert files_under(tmp_path / "reports") == []


@pytest.mark.parametrize("name, content", [("config.json", "{"), ("processor_config.json", "[1")])
def test_corrupt_model_file(capsys, model, world, tmp_path, name, content):
    (model / name).write_text(content)
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, model, "cannot load the model")
    assert files_under(tmp_path / "reports") == []


def test_processor_that_inserts_no_image_tokens(capsys, model, world):
    """A chat template that drops the image item: the processor places no image token in the prompt."""
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
        "{% endif %}{% endfor %}{% endfor %}"
    )
    status, err = run_seed(
        capsys,
        "answer",
        "--model",
        model,
        "--image",
        first_pope_image(world),
        "--question",
        "Is there a dog?",
    )
    assert_one_line_error(status, err, model, "image")


def test_processor_check_catches_a_silent_processor():
    """Also when the processor raises nothing: input_ids without the image token are refused."""
    import torch

    from seed.errors import DataError
    from seed.model.generate import check_processor

    class SilentProcessor:  # builds prompts, but its input_ids never hold image token 7
        chat_template = "{{ messages }}"
        image_token_id = 7

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
            return "USER: Is there a dog? ASSISTANT:"

        def __call__(self, images, text, return_tensors):
            return {"input_ids": torch.tensor([[1, 2, 3]])}

    with pytest.raises(DataError, match="inserts no image tokens"):
        check_processor(SilentProcessor(), "some/model")
    SilentProcessor.image_token_id = 2
    check_processor(SilentProcessor(), "some/model")  # the same prompt with an image token passes


def test_pickle_only_model_and_adapter_are_refused(capsys, model, world, tmp_path):
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, model, "pytorch_model.bin", "safetensors only")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04")
    from seed.errors import DataError
    from seed.files.inputs import require_safetensors

    with pytest.raises(DataError, match="adapter_model.bin"):
        require_safetensors(adapter, "adapter")


@pytest.mark.parametrize("path", ["/no/such/model", "missing-model", "runs/x/model"])
def test_missing_model_folder(capsys, world, tmp_path, path):
    status, err = seed_eval(capsys, Path(path), world, tmp_path / "reports")
    assert_one_line_error(status, err, path, "not found")


# --- names that escape their folder ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../../world.json", "/etc/hostname", "sub/../../../x.png", "C:\\images\\a.png"]
)
def test_pope_image_outside_the_image_folder(capsys, model, world, tmp_path, name):
    path = edit_pope(world, 0, image=name)
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, path, "row 1", "field 'image'")
    assert files_under(tmp_path / "reports") == []


def test_symlink_out_of_the_image_folder(capsys, model, world, tmp_path):
    outside = tmp_path / "outside.png"
    Image.new("RGB", (8, 8)).save(outside)
    (world / "images" / "eval" / "link.png").symlink_to(outside)
    path = edit_pope(world, 0, image="link.png")
    status, err = seed_eval(capsys, model, world, tmp_path / "reports")
    assert_one_line_error(status, err, path, "resolves outside")


def test_instruction_image_outside_the_seed_folder(capsys, model, world, tmp_path):
    path = edit_instructions(world, image="../eval/" + first_pope_image(world).name)
    status, err = seed_purify(capsys, model, world, tmp_path / "targets")
    assert_one_line_error(status, err, path, "row 0", "field 'image'", "..")
    assert files_under(tmp_path / "targets") == []


def test_chair_file_outside_the_image_folder(capsys, model, world, tmp_path):
    path = world / "chair" / "images.json"
    path.write_text(json.dumps([{"image_id": 1, "file_name": "../../synonyms.txt"}]))
    status, err = seed_eval(capsys, model, world, tmp_path / "reports", "--benchmarks", "chair")
    assert_one_line_error(status, err, path, "row 0", "file_name")
    assert files_under(tmp_path / "reports") == []


def test_targets_manifest_outside_the_target_folder(capsys, model, world, tmp_path):
    targets = tmp_path / "targets"
    targets.mkdir()
    (tmp_path / "stolen.safetensors").write_bytes(b"x")
    manifest = {
        "format": "seed-targets-manifest",
        "version": 1,
        "num_samples": 1,
        "num_tokens": 1,
        "top_k": 1,
        "shards": [{"file": "../stolen.safetensors", "num_samples": 1, "num_tokens": 1, "sha256": "0" * 64}],
        "meta": {},
    }
    (targets / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "adapter"
    status, err = run_seed(
        capsys, "-q", "distill", "--model", model, "--data", world, "--targets", targets, "--out", out
    )
    assert_one_line_error(status, err, targets / "manifest.json", "shards[0].file")
    assert files_under(out) == []


# --- safe loading: no pickle, no remote code ----------------------------------------------------------------

PICKLE_WRITERS = re.compile(r"\b(torch\.save|pickle\.dumps?|cloudpickle|joblib\.dump|dill\.dump)\b")
UNSAFE_LOADERS = re.compile(
    r"\b(torch\.load|pickle\.loads?|joblib\.load|dill\.load|allow_pickle\s*=\s*True)\b"
)


def python_sources() -> list[Path]:
    return sorted([*SEED.rglob("*.py"), *FLOWS.rglob("*.py")])


def test_no_pickle_is_written_or_read_by_our_code():
    """seed/ and flows/ never call a pickle writer or an unsafe loader (safetensors and JSON only)."""
    offenders = [
        f"{path.relative_to(SEED.parent)}:{number}: {line.strip()}"
        for path in python_sources()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if (PICKLE_WRITERS.search(line) or UNSAFE_LOADERS.search(line)) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_remote_code_is_never_switched_on_by_our_code():
    """``trust_remote_code`` is only ever passed through from the caller, whose default is False."""
    import inspect

    from seed.model.generate import load_model

    assert inspect.signature(load_model).parameters["trust_remote_code"].default is False
    offenders = [
        f"{path.name}:{number}"
        for path in python_sources()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"trust_remote_code\s*=\s*True", line)
    ]
    assert offenders == []


def test_written_model_and_targets_hold_no_pickle(model_template, tmp_path):
    """What our writers produce (a saved model, a targets folder) holds no pickle-format file."""
    import torch

    from seed.core.purify import SparseTargets
    from seed.files.inputs import PICKLE_SUFFIXES
    from seed.files.manifest import write_manifest
    from seed.files.targets import write_shard

    sparse = SparseTargets(
        torch.zeros(2, 2, dtype=torch.int32), torch.zeros(2, 2, dtype=torch.float16), torch.zeros(2)
    )
    write_shard(tmp_path / "targets" / "shard-00000.safetensors", sparse, ["a"], lengths=[2])
    write_manifest(tmp_path / "targets", ["shard-00000.safetensors"], {})
    written = files_under(model_template) + files_under(tmp_path / "targets")
    assert any(p.suffix == ".safetensors" for p in written)
    assert [p.name for p in written if p.name.endswith(PICKLE_SUFFIXES)] == []
    for path in written:  # no pickle stream either (protocol 2+ starts with 0x80)
        assert path.read_bytes()[:1] != b"\x80", path


# --- anything that still escapes is labelled, never a bare traceback ------------------------------------------


def test_global_options_before_a_delegated_command_reach_its_own_parser(capsys, world):
    """``seed -q pope-score ...`` hands -q to pope-score's parser, which names what it does not take."""
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "pope-score", "--questions", str(pope_file(world)), "--answers", str(pope_file(world))])
    assert exit_info.value.code == 2
    assert "seed pope-score: error: unrecognized arguments: -q" in capsys.readouterr().err


def test_unexpected_exception_ends_in_an_error_line_and_exit_1(capsys, monkeypatch):
    import seed.eval.pope

    def broken(argv):
        raise KeyError("something no check caught")

    monkeypatch.setattr(seed.eval.pope, "main_pope_score", broken)
    status = main(["pope-score", "--questions", "q", "--answers", "a"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.strip().splitlines()[-1].startswith("error: unexpected KeyError")
