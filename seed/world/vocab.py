"""The vocabulary of the generated world: object categories, scene types and named colours.

Everything here is a fixed constant, the same for every world seed, so that a model trained on one
world can be evaluated on another. Each category is typical of one or two scenes; the weights of a
scene's typical set decide how often each object shows up there, which is what gives the world its
strong object co-occurrence (the language prior that makes small models hallucinate).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    """An object category: single-word name, plural, supercategory, canonical colour, CHAIR synonyms."""

    name: str
    plural: str
    supercategory: str
    colour: str
    synonyms: tuple[str, ...] = ()

    def words(self) -> list[str]:
        """Every word that names this category in a caption: name, plural, synonyms and their plurals."""
        words = [self.name, self.plural]
        for synonym in self.synonyms:
            words.extend([synonym, pluralize(synonym)])
        return list(dict.fromkeys(words))


@dataclass(frozen=True)
class SceneType:
    """A scene type: background look and a weighted set of typical objects."""

    name: str
    background: tuple[int, int, int]
    texture: str
    typical: tuple[tuple[str, float], ...]

    def typical_names(self) -> list[str]:
        """The typical categories, in declaration order."""
        return [name for name, _ in self.typical]


# Named colours and the RGB they are drawn with; answers use the capitalised name.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 220),
    "yellow": (250, 220, 30),
    "orange": (255, 127, 14),
    "white": (250, 250, 250),
    "black": (25, 25, 25),
    "brown": (130, 80, 40),
    "gray": (140, 140, 140),
    "pink": (247, 150, 200),
    "purple": (130, 50, 180),
}

CATEGORIES: tuple[Category, ...] = (
    Category("plate", "plates", "kitchenware", "white", ("dish",)),
    Category("bowl", "bowls", "kitchenware", "brown", ()),
    Category("cup", "cups", "kitchenware", "blue", ("mug",)),
    Category("fork", "forks", "kitchenware", "gray", ()),
    Category("knife", "knives", "kitchenware", "gray", ("blade",)),
    Category("spoon", "spoons", "kitchenware", "gray", ()),
    Category("bottle", "bottles", "kitchenware", "green", ("flask",)),
    Category("banana", "bananas", "food", "yellow", ()),
    Category("carrot", "carrots", "food", "orange", ()),
    Category("apple", "apples", "food", "red", ()),
    Category("strawberry", "strawberries", "food", "red", ("berry",)),
    Category("car", "cars", "vehicle", "red", ("automobile",)),
    Category("bus", "buses", "vehicle", "yellow", ("coach",)),
    Category("truck", "trucks", "vehicle", "white", ("lorry",)),
    Category("bicycle", "bicycles", "vehicle", "blue", ("bike", "cycle")),
    Category("boat", "boats", "vehicle", "white", ("ship",)),
    Category("bench", "benches", "outdoor", "green", ()),
    Category("umbrella", "umbrellas", "accessory", "black", ("parasol",)),
    Category("dog", "dogs", "animal", "brown", ("puppy",)),
    Category("cat", "cats", "animal", "orange", ("kitten",)),
    Category("bird", "birds", "animal", "blue", ()),
    Category("ball", "balls", "sports", "red", ("football",)),
    Category("kite", "kites", "sports", "pink", ()),
    Category("frisbee", "frisbees", "sports", "purple", ("disc",)),
    Category("surfboard", "surfboards", "sports", "yellow", ("board",)),
    Category("laptop", "laptops", "electronic", "gray", ("computer",)),
    Category("keyboard", "keyboards", "electronic", "black", ()),
    Category("phone", "phones", "electronic", "black", ("cellphone", "smartphone")),
    Category("book", "books", "indoor", "green", ("novel",)),
    Category("clock", "clocks", "indoor", "white", ()),
    Category("lamp", "lamps", "furniture", "yellow", ()),
    Category("chair", "chairs", "furniture", "brown", ("stool",)),
    Category("bed", "beds", "furniture", "purple", ()),
    Category("pillow", "pillows", "furniture", "white", ("cushion",)),
)

SCENES: tuple[SceneType, ...] = (
    SceneType(
        "kitchen",
        (226, 214, 186),
        "tiles",
        (
            ("plate", 3.0),
            ("bowl", 2.0),
            ("cup", 2.5),
            ("fork", 2.0),
            ("knife", 2.0),
            ("spoon", 1.5),
            ("banana", 1.5),
            ("carrot", 1.0),
        ),
    ),
    SceneType(
        "street",
        (168, 168, 170),
        "road",
        (
            ("car", 3.0),
            ("bus", 2.5),
            ("truck", 2.0),
            ("bicycle", 2.0),
            ("umbrella", 1.0),
            ("dog", 1.0),
            ("bench", 1.0),
        ),
    ),
    SceneType(
        "park",
        (96, 158, 78),
        "grass",
        (
            ("dog", 3.0),
            ("bench", 2.5),
            ("bird", 2.0),
            ("ball", 2.0),
            ("kite", 1.5),
            ("frisbee", 1.5),
            ("apple", 1.0),
            ("strawberry", 1.0),
        ),
    ),
    SceneType(
        "office",
        (205, 196, 176),
        "desk",
        (
            ("laptop", 3.0),
            ("keyboard", 3.0),
            ("phone", 2.0),
            ("cup", 2.0),
            ("book", 1.5),
            ("chair", 1.5),
            ("clock", 1.0),
            ("lamp", 1.0),
        ),
    ),
    SceneType(
        "beach",
        (232, 212, 150),
        "sea",
        (
            ("surfboard", 3.0),
            ("boat", 2.5),
            ("umbrella", 2.5),
            ("ball", 1.5),
            ("bird", 1.5),
            ("kite", 1.0),
            ("bottle", 1.0),
        ),
    ),
    SceneType(
        "bedroom",
        (188, 170, 204),
        "carpet",
        (
            ("bed", 3.0),
            ("pillow", 3.0),
            ("lamp", 2.0),
            ("book", 2.0),
            ("clock", 1.5),
            ("cat", 1.5),
            ("chair", 1.0),
        ),
    ),
)

NUMBER_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)

CATEGORY_BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}
SCENE_BY_NAME: dict[str, SceneType] = {s.name: s for s in SCENES}
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)


def pluralize(word: str) -> str:
    """English plural of a single vocabulary word (the few irregular ones are spelled out in CATEGORIES)."""
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith("fe"):
        return word[:-2] + "ves"
    return word + "s"


def article(word: str) -> str:
    """The indefinite article for ``word`` ("an" before a vowel letter)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def number_word(count: int) -> str:
    """Spell a small count ("two"); larger counts stay digits."""
    return NUMBER_WORDS[count] if 0 <= count < len(NUMBER_WORDS) else str(count)


def vocabulary_record() -> dict:
    """The vocabulary as plain JSON-ready data (for world.json)."""
    return {
        "categories": [
            {
                "id": i + 1,
                "name": c.name,
                "plural": c.plural,
                "supercategory": c.supercategory,
                "colour": c.colour,
                "synonyms": list(c.synonyms),
            }
            for i, c in enumerate(CATEGORIES)
        ],
        "scenes": [
            {
                "name": s.name,
                "background": list(s.background),
                "texture": s.texture,
                "typical": {name: weight for name, weight in s.typical},
            }
            for s in SCENES
        ],
        "colours": {name: list(rgb) for name, rgb in COLOURS.items()},
    }
