"""Captions, training conversations and SEED instructions of the generated world."""

from __future__ import annotations

import numpy as np

from seed.world.config import WorldConfig
from seed.world.scene import PlacedObject, WorldScene, sample_scene
from seed.world.text import (
    CAPTION_PROMPT,
    SHORT_ANSWER,
    ask_absent,
    ask_colour_check,
    ask_count,
    ask_left_of,
    ask_where,
    describe,
    join_phrases,
    object_phrase,
    seed_instructions,
    train_conversation,
)
from seed.world.vocab import SCENE_BY_NAME


def _kitchen() -> WorldScene:
    return WorldScene(
        "kitchen",
        [
            PlacedObject("apple", "red", "medium", 8, 2, 10),
            PlacedObject("plate", "white", "large", 12, 20, 10),
            PlacedObject("plate", "white", "large", 12, 20, 30),
            PlacedObject("fork", "gray", "small", 5, 40, 5),
        ],
    )


def test_phrases():
    assert object_phrase("apple", "red", 1) == "a red apple"
    assert object_phrase("carrot", "orange", 1) == "an orange carrot"
    assert object_phrase("knife", "gray", 2) == "two gray knives"
    assert object_phrase("apple", None, 1) == "an apple"
    assert join_phrases(["a", "b", "c"]) == "a, b and c"
    assert join_phrases(["a"]) == "a"


def test_clean_caption_names_every_object_with_colour_and_count():
    caption = describe(_kitchen(), np.random.default_rng(0), noise_rate=0.0)
    assert caption == "A kitchen with a red apple, two white plates and a gray fork."
    office = WorldScene("office", [PlacedObject("laptop", "gray", "large", 12, 5, 5)])
    assert describe(office, np.random.default_rng(0), 0.0) == "An office with a gray laptop."


def test_noisy_caption_adds_one_absent_typical_object():
    scene = _kitchen()
    typical = set(SCENE_BY_NAME["kitchen"].typical_names()) - {"plate", "fork"}
    for seed in range(20):
        caption = describe(scene, np.random.default_rng(seed), noise_rate=1.0)
        extra = [name for name in typical if f" {name}" in caption]
        assert len(extra) == 1, caption
        assert "a red apple" in caption and "two white plates" in caption


def test_answers_follow_the_image():
    scene, config = _kitchen(), WorldConfig()
    rng = np.random.default_rng(0)
    for _ in range(30):
        question, answer = ask_count(scene, rng, config)
        expected = "Two" if "plates" in question else "One"
        assert answer == expected and question.endswith(SHORT_ANSWER)
        question, answer = ask_colour_check(scene, rng, config)
        named = "red" if "apple" in question else "gray"
        assert (answer == "Yes") == question.startswith(
            f"Is the {'apple' if named == 'red' else 'fork'} {named}?"
        )
        question, answer = ask_left_of(scene, rng, config)
        truths = ("Is the apple on the left of the fork?", "Is the fork on the right of the apple?")
        assert answer == ("Yes" if question.startswith(truths) else "No"), question
    question, answer = ask_where(
        WorldScene("kitchen", [PlacedObject("cup", "blue", "small", 5, 1, 1)]), rng, config
    )
    assert answer == "On the left"


def test_negative_sampling_modes():
    scene = WorldScene("kitchen", [PlacedObject("plate", "white", "large", 12, 2, 2)])
    typical = set(SCENE_BY_NAME["kitchen"].typical_names())

    def typical_share(mode: str, hard: float = 0.0) -> float:
        config = WorldConfig(train_negative_sampling=mode, hard_negative_rate=hard)
        rng = np.random.default_rng(3)
        names = [ask_absent(scene, rng, config)[0].split()[3] for _ in range(600)]
        assert "plate" not in names
        return float(np.mean([n in typical for n in names]))

    assert typical_share("adversarial") == 1.0
    random_share = typical_share("random")
    assert random_share < 0.4
    # a hard-negative rate h mixes the two: expected share h + (1 - h) * random_share
    mixed = typical_share("random", hard=0.5)
    assert abs(mixed - (0.5 + 0.5 * random_share)) < 0.06


def test_train_conversation_shape():
    config = WorldConfig(qa_per_image=6, caption_rate=1.0)
    rng = np.random.default_rng(5)
    for _ in range(50):
        scene = sample_scene(rng, config)
        turns = train_conversation(scene, rng, config)
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert len(turns) == 2 * 7
        assert turns[0]["value"].startswith("<image>\n")
        assert sum("<image>" in t["value"] for t in turns) == 1
        humans = [t["value"].removeprefix("<image>\n") for t in turns[::2]]
        assert humans.count(CAPTION_PROMPT) == 1
        assert len(set(humans)) == len(humans)
        for question, answer in zip(turns[::2], turns[1::2], strict=True):
            if question["value"].endswith(SHORT_ANSWER):
                assert len(answer["value"].split()) <= 3 and answer["value"][0].isupper()


def test_seed_instructions_have_no_answers_and_ask_typical_objects():
    config = WorldConfig(seed_questions=3)
    rng = np.random.default_rng(7)
    for _ in range(30):
        scene = sample_scene(rng, config)
        turns = seed_instructions(scene, rng, config)
        assert all(t["from"] == "human" for t in turns) and len(turns) == 4
        assert turns[0]["value"] == "<image>\n" + CAPTION_PROMPT
        typical = SCENE_BY_NAME[scene.kind].typical_names()
        for turn in turns[1:]:
            assert turn["value"].endswith(SHORT_ANSWER)
            assert any(f" {name} " in turn["value"] or f" {name}?" in turn["value"] for name in typical)


def test_seed_questions_from_the_whole_vocabulary_are_label_free_and_distinct():
    from seed.world.vocab import CATEGORY_NAMES

    config = WorldConfig(seed_questions=10, seed_question_pool="all")
    asked_typical = asked = 0
    for index in range(60):
        scene = sample_scene(np.random.default_rng([0, index]), config)
        # the words drawn do not depend on the image: the same stream gives the same questions for any scene
        turns = seed_instructions(scene, np.random.default_rng([1, index]), config)
        other = seed_instructions(
            sample_scene(np.random.default_rng([9, index]), config), np.random.default_rng([1, index]), config
        )
        assert (
            turns == other
            and {"from"} | {"value"} == set(turns[0])
            and all(t["from"] == "human" for t in turns)
        )
        names = [next(n for n in CATEGORY_NAMES if f" {n} in" in t["value"]) for t in turns[1:]]
        assert len(names) == 10 == len(set(names))
        asked += len(names)
        asked_typical += sum(n in SCENE_BY_NAME[scene.kind].typical_names() for n in names)
    assert 0.1 < asked_typical / asked < 0.4  # about 8 in 34 categories are typical of a scene


def test_mixed_seed_questions_ask_half_typical_half_other_objects_without_labels():
    from seed.world.vocab import CATEGORY_NAMES

    config = WorldConfig(seed_questions=12, seed_question_pool="mixed")
    for index in range(40):
        scene = sample_scene(np.random.default_rng([0, index]), config)
        turns = seed_instructions(scene, np.random.default_rng([1, index]), config)
        assert turns == seed_instructions(scene, np.random.default_rng([1, index]), config)  # seeded
        assert turns[0]["value"] == "<image>\n" + CAPTION_PROMPT and len(turns) == 13
        names = [next(n for n in CATEGORY_NAMES if f" {n} in" in t["value"]) for t in turns[1:]]
        assert len(set(names)) == 12
        typical = SCENE_BY_NAME[scene.kind].typical_names()
        assert sum(n in typical for n in names) >= 6  # six typical ones, and others may be typical too
        present = {obj.category for obj in scene.objects}
        # chosen without looking at the objects: the same stream asks the same on a scene of the same kind
        twin = next(
            s
            for s in (sample_scene(np.random.default_rng([5, index, k]), config) for k in range(200))
            if s.kind == scene.kind and {o.category for o in s.objects} != present
        )
        assert seed_instructions(twin, np.random.default_rng([1, index]), config) == turns
