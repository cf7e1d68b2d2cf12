"""Vocabulary of the generated world: categories, scenes, colours and their words."""

from __future__ import annotations

from seed.world.vocab import (
    CATEGORIES,
    COLOURS,
    SCENES,
    article,
    number_word,
    pluralize,
    vocabulary_record,
)


def test_categories_are_many_single_words_with_palette_colours():
    names = [c.name for c in CATEGORIES]
    assert len(names) >= 24
    assert len(set(names)) == len(names)
    for category in CATEGORIES:
        assert category.name.isalpha() and category.name.islower()
        assert category.plural.isalpha() and category.plural != category.name
        assert category.colour in COLOURS


def test_caption_words_never_name_two_categories():
    owner: dict[str, str] = {}
    for category in CATEGORIES:
        for word in category.words():
            assert owner.setdefault(word, category.name) == category.name, word
    assert "bike" in owner and owner["bike"] == "bicycle"
    assert owner["mugs"] == "cup"
    assert owner["knives"] == "knife"


def test_scenes_have_weighted_typical_sets_covering_every_category():
    assert len(SCENES) == 6
    covered: set[str] = set()
    names = {c.name for c in CATEGORIES}
    for scene in SCENES:
        assert 5 <= len(scene.typical) <= 8
        assert all(name in names and weight > 0 for name, weight in scene.typical)
        covered.update(scene.typical_names())
    assert covered == names
    shared = [n for n in names if sum(n in s.typical_names() for s in SCENES) == 2]
    assert len(shared) >= 4


def test_palette_has_distinct_colours():
    assert len(COLOURS) >= 10
    assert len(set(COLOURS.values())) == len(COLOURS)


def test_word_helpers():
    assert article("apple") == "an" and article("orange carrot") == "an" and article("fork") == "a"
    assert pluralize("bike") == "bikes" and pluralize("puppy") == "puppies" and pluralize("dish") == "dishes"
    assert number_word(2) == "two" and number_word(40) == "40"


def test_vocabulary_record_lists_everything():
    record = vocabulary_record()
    assert [c["name"] for c in record["categories"]] == [c.name for c in CATEGORIES]
    assert record["categories"][0]["id"] == 1
    assert set(record["colours"]) == set(COLOURS)
    assert {s["name"] for s in record["scenes"]} == {s.name for s in SCENES}
