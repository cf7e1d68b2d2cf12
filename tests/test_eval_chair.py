"""CHAIR: synonym list, object extraction and CHAIR_i / CHAIR_s against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seed.errors import DataError
from seed.eval.chair import (
    chair_metrics,
    extract_objects,
    load_coco_instances,
    load_synonyms,
    score_caption,
)

SYNONYMS_TXT = """\
# a comment line
person, man, woman, people, men, Person
bicycle, bike, bikes
motorcycle, motor bike, motorbike

dog, puppy, pup
hot dog
dining table, table
knife, knive
teddy bear, teddybear,
"""


@pytest.fixture
def synonyms(tmp_path) -> dict[str, str]:
    path = tmp_path / "synonyms.txt"
    path.write_text(SYNONYMS_TXT)
    return load_synonyms(path)


def test_load_synonyms(synonyms):
    assert synonyms["bike"] == "bicycle"
    assert synonyms["bicycle"] == "bicycle"
    assert synonyms["people"] == "person"  # listed plural
    assert synonyms["motor bike"] == "motorcycle"  # multi-word synonym
    assert synonyms["teddy bear"] == "teddy bear"  # multi-word category, trailing comma ignored
    assert synonyms["table"] == "dining table"
    assert set(synonyms) == {
        *("person", "man", "woman", "people", "men"),  # "Person" repeated: lowercased, kept once
        *("bicycle", "bike", "bikes", "motorcycle", "motor bike", "motorbike", "dog", "puppy", "pup"),
        *("hot dog", "dining table", "table", "knife", "knive", "teddy bear", "teddybear"),
    }  # the comment line and the blank line add nothing


def test_load_synonyms_rejects_a_word_in_two_categories(tmp_path):
    path = tmp_path / "synonyms.txt"
    path.write_text("bicycle, bike\nmotorcycle, motorbike, bike\n")
    with pytest.raises(DataError, match="'bike' belongs to 'bicycle'") as info:
        load_synonyms(path)
    assert info.value.row == 2 and str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"# only a comment\n", b"dog, , puppy\n", b"\xff\xfe\xfd"])
def test_load_synonyms_rejects_bad_files(tmp_path, content):
    path = tmp_path / "synonyms.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="synonyms.txt"):
        load_synonyms(path)


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("A man rides a bike next to a motor bike.", ["person", "bicycle", "motorcycle"]),
        ("Two dogs eat hot dogs at the table!", ["dog", "hot dog", "dining table"]),  # phrase before word
        ("PEOPLE, bikes; a Puppy's toy", ["person", "bicycle", "dog"]),  # case and punctuation
        ("knives and a teddy-bear and teddy bears", ["knife", "teddy bear", "teddy bear"]),
        ("A dog, a dog and another dog", ["dog", "dog", "dog"]),  # one entry per mention
        ("A hot day in the city", []),  # "hot" alone is no object
        ("", []),
    ],
)
def test_extract_objects(synonyms, caption, expected):
    assert extract_objects(caption, synonyms) == expected


def test_score_caption_lists_hallucinations(synonyms):
    scored = score_caption("A man and his dog ride a bike.", {"person", "bicycle"}, synonyms)
    assert scored == {"mentions": ["person", "dog", "bicycle"], "hallucinated": ["dog"]}


def test_chair_hand_computed(synonyms):
    captions = {
        1: "A man riding a bike on the street.",  # person, bicycle: none hallucinated
        2: "A dog and a puppy near a bike.",  # dog, dog, bicycle: bicycle hallucinated
        3: "People eating hot dogs at a table with a dog.",  # person, hot dog, dining table, dog: dog
        4: "An empty street.",  # no mentions
    }
    gt = {
        1: {"person", "bicycle"},
        2: {"dog"},
        3: {"person", "hot dog", "dining table"},
        4: {"car"},
        5: {"dog"},  # an image nobody captioned is ignored
    }
    metrics = chair_metrics(captions, gt, synonyms)
    # mentions 2 + 3 + 4 + 0 = 9, hallucinated 0 + 1 + 1 + 0 = 2; captions with one: 2 of 4
    # ground truth 2 + 1 + 3 + 1 = 7 objects, mentioned 2 + 1 + 3 + 0 = 6
    assert metrics == {
        "chair_i": pytest.approx(2 / 9),
        "chair_s": pytest.approx(1 / 2),
        "recall": pytest.approx(6 / 7),
        "n_captions": 4,
        "n_hallucinated_captions": 2,
        "n_mentions": 9,
        "n_hallucinated_mentions": 2,
    }


def test_chair_maps_ground_truth_names_through_synonyms(synonyms):
    # a ground-truth name given as a synonym ("Bike") still counts as the category bicycle
    assert chair_metrics({7: "a bike"}, {7: {"Bike"}}, synonyms)["chair_i"] == 0.0


def test_chair_empty_cases_are_zero(synonyms):
    assert chair_metrics({1: "Nothing to see here."}, {1: set()}, synonyms) == {
        "chair_i": 0.0,
        "chair_s": 0.0,
        "recall": 0.0,
        "n_captions": 1,
        "n_hallucinated_captions": 0,
        "n_mentions": 0,
        "n_hallucinated_mentions": 0,
    }
    assert chair_metrics({}, {}, synonyms)["chair_s"] == 0.0


def test_chair_all_hallucinated(synonyms):
    metrics = chair_metrics({1: "a dog", 2: "a bike and a man"}, {1: {"person"}, 2: set()}, synonyms)
    assert (metrics["chair_i"], metrics["chair_s"], metrics["recall"]) == (1.0, 1.0, 0.0)


def test_chair_caption_without_ground_truth_is_an_error(synonyms):
    with pytest.raises(DataError, match="image_id 9") as info:
        chair_metrics({9: "a dog"}, {1: {"dog"}}, synonyms, source="captions.json")
    assert "captions.json" in str(info.value)


# --- COCO instances -----------------------------------------------------------------------------

ANNOTATIONS = {
    "info": {"description": "tiny world"},
    "images": [
        {"id": 0, "file_name": "eval_000000.png", "width": 48, "height": 48, "split": "eval"},
        {"id": 1, "file_name": "eval_000001.png", "width": 48, "height": 48, "split": "eval"},
        {"id": 2, "file_name": "eval_000002.png", "width": 48, "height": 48, "split": "eval"},
    ],
    "categories": [
        {"id": 1, "name": "dog", "supercategory": "animal", "colour": "brown"},
        {"id": 2, "name": "bicycle", "supercategory": "vehicle", "colour": "red"},
    ],
    "annotations": [
        {"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 2, 8, 8], "area": 64, "iscrowd": 0},
        {"id": 1, "image_id": 0, "category_id": 1, "bbox": [20, 2, 8, 8], "area": 64, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 2, 8, 8], "area": 64, "iscrowd": 0},
    ],
}


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_load_coco_instances(tmp_path):
    objects = load_coco_instances(write_json(tmp_path / "annotations.json", ANNOTATIONS))
    assert objects == {0: {"dog"}, 1: {"bicycle"}, 2: set()}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["annotations"].append({"id": 3, "image_id": 0, "category_id": 99}),
            "annotations.category_id",
        ),
        (
            lambda d: d["annotations"].append({"id": 3, "image_id": 42, "category_id": 1}),
            "annotations.image_id",
        ),
        (lambda d: d["annotations"].append({"id": 3, "category_id": 1}), "annotations.image_id"),
        (lambda d: d.pop("categories"), "categories"),
        (lambda d: d["categories"].append({"id": 3}), "categories.name"),
        (lambda d: d["images"].append({"file_name": "x.png"}), "images.id"),
    ],
)
def test_load_coco_instances_rejects_inconsistent_files(tmp_path, mutate, field):
    data = json.loads(json.dumps(ANNOTATIONS))
    mutate(data)
    path = write_json(tmp_path / "annotations.json", data)
    with pytest.raises(DataError) as info:
        load_coco_instances(path)
    assert info.value.field == field and str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"{not json", b"[]", b"\xff\xfe", b""])
def test_load_coco_instances_rejects_unreadable_files(tmp_path, content):
    path = tmp_path / "annotations.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match="annotations.json"):
        load_coco_instances(path)
