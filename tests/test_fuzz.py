"""Fuzzing the loaders of every file a user hands to `seed`: they raise the documented error type only.

Each loader gets arbitrary bytes, arbitrary JSON, and near-valid records (a valid record whose keys
are dropped or replaced by arbitrary JSON values). Whatever it is given, it either returns a result
of the documented shape or raises `DataError` (`ConfigError` for params files) naming the file;
never a KeyError, TypeError, RecursionError or a traceback from deeper down. The POPE and MME
question parsers have their own fuzz tests in test_eval_pope.py and test_eval_mme.py; here they are
also fuzzed as pairs of files (questions with answers) and as scoring input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seed.core.purify import SparseTargets
from seed.errors import ConfigError, DataError
from seed.eval.benchmarks import benchmark_paths, chair_image_list, load_mme_meta, load_world_annotations
from seed.eval.chair import load_coco_instances, load_synonyms
from seed.eval.mme import mme_subtask_score
from seed.eval.pope import pope_score
from seed.files.conversation import load_conversations
from seed.files.manifest import MANIFEST_NAME, read_manifest, write_manifest
from seed.files.targets import read_shard, write_shard
from seed.params import load_config
from seed.stages.evaluate import EvaluateConfig
from seed.validate.readers import read_json, read_jsonl

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = (
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False) | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
# Strings a path, label or name field may plausibly hold, including the hostile ones.
names = st.sampled_from(
    ["a.png", "", " ", "../x.png", "/etc/passwd", "C:\\x.png", "sub/../../x", "a\x00b.png", "é.png", "."]
)
deep_json = st.sampled_from([2, 50, 5000]).map(
    lambda depth: "[" * depth + "]" * depth
)  # 5000: past the recursion limit
json_documents = json_values.map(json.dumps) | deep_json
raw_bytes = st.binary(max_size=300)


def near_valid(record: dict) -> st.SearchStrategy[dict]:
    """The record with each key kept, dropped, or given an arbitrary (or hostile) value."""
    options = {
        key: (value if isinstance(value, st.SearchStrategy) else st.just(value)) | json_values | names
        for key, value in record.items()
    }
    return st.fixed_dictionaries({}, optional=options)


def check_error(error: Exception, path: Path) -> None:
    """The error names the file it is about, on one line."""
    assert str(path) in str(error)
    assert "\n" not in str(error)


# --- the data folder's JSON files ---------------------------------------------------------------------

CONVERSATION = {
    "id": "train_000001",
    "image": "train_000001.png",
    "conversations": [
        {"from": "human", "value": "<image>\nIs there a fork?"},
        {"from": "gpt", "value": "Yes"},
    ],
}
TURN = {"from": "human", "value": "<image>\nWhat is it?"}
conversation_docs = (
    st.lists(
        near_valid(CONVERSATION)
        | near_valid({**CONVERSATION, "conversations": st.lists(near_valid(TURN), max_size=2)}),
        max_size=3,
    ).map(json.dumps)
    | json_documents
)


@FUZZ
@given(content=conversation_docs.map(str.encode) | raw_bytes, answers=st.booleans())
def test_conversation_loader_raises_only_data_error(tmp_path, content, answers):
    path = tmp_path / "conversations.json"
    path.write_bytes(content)
    try:
        records = load_conversations(path, require_answers=answers)
    except DataError as error:
        check_error(error, path)
    else:
        assert all(isinstance(r["image"], str) and ".." not in r["image"] for r in records)


INSTANCES = {
    "images": [{"id": 1, "file_name": "a.png"}],
    "categories": [{"id": 1, "name": "fork", "colour": "gray"}],
    "annotations": [{"id": 0, "image_id": 1, "category_id": 1, "colour": "gray"}],
}
instances_docs = (
    st.fixed_dictionaries(
        {},
        optional={
            "images": st.lists(near_valid(INSTANCES["images"][0]), max_size=2) | json_values,
            "categories": st.lists(near_valid(INSTANCES["categories"][0]), max_size=2) | json_values,
            "annotations": st.lists(near_valid(INSTANCES["annotations"][0]), max_size=2) | json_values,
        },
    ).map(json.dumps)
    | json_documents
)


@FUZZ
@given(content=instances_docs.map(str.encode) | raw_bytes)
def test_annotation_loaders_raise_only_data_error(tmp_path, content):
    path = tmp_path / "annotations.json"
    path.write_bytes(content)
    for loader in (load_coco_instances, load_world_annotations):
        try:
            loader(path)
        except DataError as error:
            check_error(error, path)


@FUZZ
@given(
    content=st.lists(near_valid({"image_id": 1, "file_name": "a.png"}), max_size=3).map(json.dumps)
    | json_documents
)
def test_chair_image_list_raises_only_data_error(tmp_path, content):
    path = tmp_path / "images.json"
    path.write_text(content)
    config = EvaluateConfig(chair_images_file=str(path))
    try:
        listing = chair_image_list(benchmark_paths(tmp_path, config), config)
    except DataError as error:
        check_error(error, path)
    else:
        assert all(".." not in item["file_name"] for item in listing)


@FUZZ
@given(
    content=st.dictionaries(
        names, near_valid({"object": "fork", "atypical": True}) | json_values, max_size=3
    ).map(json.dumps)
    | json_documents
)
def test_mme_meta_raises_only_data_error(tmp_path, content):
    path = tmp_path / "meta.json"
    path.write_text(content)
    try:
        meta = load_mme_meta(path)
    except DataError as error:
        check_error(error, path)
    else:
        assert all(isinstance(info, dict) for info in meta.values())


@FUZZ
@given(content=st.lists(st.text(alphabet="ab ,#\t\n-", max_size=20), max_size=4).map("\n".join))
def test_synonym_list_raises_only_data_error(tmp_path, content):
    path = tmp_path / "synonyms.txt"
    path.write_text(content)
    try:
        synonyms = load_synonyms(path)
    except DataError as error:
        check_error(error, path)
    else:
        assert synonyms and all(term and category for term, category in synonyms.items())


@FUZZ
@given(content=json_documents.map(str.encode) | raw_bytes)
def test_validation_readers_never_raise(tmp_path, content):
    """`seed validate` turns unreadable files into report failures: its readers raise nothing at all."""
    path = tmp_path / "file.json"
    path.write_bytes(content)
    value, failures = read_json(path, "file.json")
    assert value is None or not failures
    records, failures = read_jsonl(path, "file.json")
    assert all(isinstance(obj, dict) for _, obj in records)


@FUZZ
@given(name=names | json_values | st.text(max_size=12))
def test_validation_image_checker_never_raises(tmp_path, name):
    """Whatever a data file names as its image, `seed validate` reports a problem instead of raising."""
    from seed.validate.images import ImageChecker

    problem = ImageChecker(max_side=64).problem(tmp_path, name, "images")
    assert problem is None or isinstance(problem, str)
    if isinstance(name, str) and (".." in name.replace("\\", "/").split("/") or "\0" in name):
        assert problem is not None and "not a relative image file name" in problem


# --- POPE and MME as pairs of files and as scoring input -------------------------------------------------

pope_question = near_valid({"question_id": 1, "image": "a.png", "text": "Is there a fork?", "label": "yes"})
pope_answer = near_valid({"question_id": 1, "text": "Yes"})


@FUZZ
@given(
    questions=st.lists(pope_question, min_size=1, max_size=3),
    answers=st.lists(pope_answer, min_size=1, max_size=3),
)
def test_pope_score_raises_only_data_error(tmp_path, questions, answers):
    q_path, a_path = tmp_path / "q.jsonl", tmp_path / "a.jsonl"
    q_path.write_text("".join(json.dumps(q) + "\n" for q in questions))
    a_path.write_text("".join(json.dumps(a) + "\n" for a in answers))
    try:
        metrics = pope_score(q_path, a_path)
    except DataError as error:
        assert str(q_path) in str(error) or str(a_path) in str(error)
    else:
        assert all(0.0 <= value <= 1.0 for value in metrics.values())


@FUZZ
@given(rows=st.lists(near_valid({"answer": "yes", "pair_id": "a", "prediction": "Yes"}), max_size=4))
def test_mme_scoring_raises_only_data_error(rows):
    try:
        scores = mme_subtask_score(rows, source="<rows>")
    except DataError as error:
        assert "<rows>" in str(error)
    else:
        assert 0.0 <= scores["score"] <= 200.0


# --- the targets manifest and shards (seed/files/targets.py) -------------------------------------------------


@pytest.fixture(scope="module")
def target_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("targets")
    sparse = SparseTargets(
        torch.zeros(3, 2, dtype=torch.int32), torch.zeros(3, 2, dtype=torch.float16), torch.zeros(3)
    )
    write_shard(folder / "shard-00000.safetensors", sparse, ["a"], lengths=[3])
    write_manifest(folder, ["shard-00000.safetensors"], {"stage": "purify"})
    return folder


def manifest_variants(valid: dict) -> st.SearchStrategy[dict]:
    entry = valid["shards"][0]
    return st.fixed_dictionaries(
        {},
        optional={
            **{
                key: st.sampled_from([value]) | json_values for key, value in valid.items() if key != "shards"
            },
            "shards": st.lists(near_valid(entry), max_size=2) | json_values,
        },
    )


@FUZZ
@given(data=st.data())
def test_manifest_reader_raises_only_data_error(target_dir, tmp_path, data):
    valid = json.loads((target_dir / MANIFEST_NAME).read_text())
    content = data.draw(manifest_variants(valid).map(json.dumps) | json_documents)
    folder = tmp_path / "t"
    folder.mkdir(exist_ok=True)
    (folder / "shard-00000.safetensors").write_bytes((target_dir / "shard-00000.safetensors").read_bytes())
    (folder / MANIFEST_NAME).write_text(content)
    try:
        manifest = read_manifest(folder)
    except DataError as error:
        check_error(error, folder / MANIFEST_NAME)
    else:
        assert all(entry.path.resolve().is_relative_to(folder.resolve()) for entry in manifest.shards)


@FUZZ
@given(
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
)
def test_shard_reader_raises_only_data_error(target_dir, tmp_path, cut, flips):
    """A truncated or bit-flipped shard is refused with DataError (or still reads back consistently)."""
    raw = bytearray((target_dir / "shard-00000.safetensors").read_bytes())
    for position, value in flips:
        raw[position % len(raw)] = value
    path = tmp_path / "shard.safetensors"
    path.write_bytes(bytes(raw[: cut % (len(raw) + 1)]) if cut < len(raw) else bytes(raw))
    try:
        shard, ids = read_shard(path)
    except DataError as error:
        check_error(error, path)
    else:
        assert len(shard) == len(ids)


# --- params files ---------------------------------------------------------------------------------------

yaml_values = json_values | st.sampled_from(["1e-3", "fast", "nan", ".inf", "[1, 2", "{a: 1}"])


@FUZZ
@given(
    section=st.sampled_from(["evaluate", "validate", "pretrain", "world"]),
    values=st.dictionaries(
        st.sampled_from(
            ["batch_size", "cd_beta", "methods", "max_image_side", "lr", "steps", "seed", "n_train"]
        ),
        yaml_values,
        max_size=3,
    )
    | json_values,
    raw=st.none() | st.text(max_size=30),
)
def test_params_loader_raises_only_config_error(tmp_path, section, values, raw):
    from seed.stages.pretrain import PretrainConfig
    from seed.stages.validate import ValidateConfig
    from seed.world.config import WorldConfig

    classes = {
        "evaluate": EvaluateConfig,
        "validate": ValidateConfig,
        "pretrain": PretrainConfig,
        "world": WorldConfig,
    }
    path = tmp_path / "params.yaml"
    path.write_text(raw if raw is not None else json.dumps({section: values}))
    try:
        load_config(classes[section], section, path)
    except ConfigError as error:
        assert str(path) in str(error) and "\n" not in str(error)
