"""Words for world images: captions, training question-answer turns and label-free SEED instructions.

Phrasing follows LLaVA-1.5's instruction data: short-answer questions end with SHORT_ANSWER, the
first human turn of a conversation starts with "<image>\\n", answers are capitalised single words or
short phrases ("Yes", "Red", "Two", "On the left"). Captions name every object with colour and
count; a noisy caption also names one typical object of the scene that is not there, the way human
and machine-written captions do, which teaches the language prior that POPE and CHAIR then expose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from seed.world.scene import WorldScene, other_colour, typical_choice
from seed.world.vocab import CATEGORY_BY_NAME, CATEGORY_NAMES, SCENE_BY_NAME, article, number_word

if TYPE_CHECKING:
    from seed.world.config import WorldConfig

IMAGE_TOKEN = "<image>\n"
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
CAPTION_PROMPT = "Describe the image briefly."
LEFT, RIGHT, MIDDLE = "On the left", "On the right", "In the middle"

Turn = tuple[str, str]  # (question with any suffix, answer)


def object_phrase(category: str, colour: str | None, count: int) -> str:
    """ "a red apple", "two white plates", "an orange carrot"; colour None leaves it out."""
    spec = CATEGORY_BY_NAME[category]
    noun = spec.name if count == 1 else spec.plural
    words = f"{colour} {noun}" if colour else noun
    return f"{article(words)} {words}" if count == 1 else f"{number_word(count)} {words}"


def join_phrases(phrases: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def describe(scene: WorldScene, rng: np.random.Generator, noise_rate: float) -> str:
    """Caption naming each object with colour and count, e.g. "A kitchen with a red apple and two white plates.".

    With probability ``noise_rate`` one typical object of the scene that is absent is named too (in
    its canonical colour, at a random place in the list).
    """
    groups: dict[tuple[str, str], int] = {}
    for obj in scene.objects:
        groups[(obj.category, obj.colour)] = groups.get((obj.category, obj.colour), 0) + 1
    phrases = [object_phrase(cat, colour, n) for (cat, colour), n in groups.items()]
    if rng.random() < noise_rate:
        present = set(scene.categories())
        missing = [name for name in SCENE_BY_NAME[scene.kind].typical_names() if name not in present]
        if missing:
            ghost = typical_choice(rng, scene.kind, exclude=present)
            phrase = object_phrase(ghost, CATEGORY_BY_NAME[ghost].colour, 1)
            phrases.insert(int(rng.integers(len(phrases) + 1)), phrase)
    opening = f"{article(scene.kind)} {scene.kind}".capitalize()
    if not phrases:
        return f"{opening}."
    return f"{opening} with {join_phrases(phrases)}."


def short(question: str) -> str:
    """Add the single-word-answer instruction."""
    return question + SHORT_ANSWER


def existence_question(category: str) -> str:
    """ "Is there a fork in the image?" """
    return f"Is there {article(category)} {category} in the image?"


def region(scene_x: float, image_size: int) -> str:
    """Horizontal third of a centre coordinate: LEFT, MIDDLE or RIGHT."""
    if scene_x < image_size / 3:
        return LEFT
    return RIGHT if scene_x > 2 * image_size / 3 else MIDDLE


def position_margin(image_size: int) -> float:
    """Smallest centre-to-centre gap (pixels) for which "left of" is asked at all."""
    return max(2.0, image_size / 12)


def _choice(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def ask_exists(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """A present category -> "Yes"."""
    return short(existence_question(_choice(rng, scene.categories()))), "Yes"


def ask_absent(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """An absent category -> "No", chosen per config.train_negative_sampling.

    "random": uniform over absent categories (rarely a scene-typical one), except that a share
    ``hard_negative_rate`` asks about an absent typical object; "adversarial": always a typical object
    of the scene that is absent. Both fall back to uniform when all typical objects are present.
    """
    present = set(scene.categories())
    typical_missing = [n for n in SCENE_BY_NAME[scene.kind].typical_names() if n not in present]
    hard = config.train_negative_sampling == "adversarial" or (
        config.hard_negative_rate > 0 and rng.random() < config.hard_negative_rate
    )
    if hard and typical_missing:
        name = typical_choice(rng, scene.kind, exclude=present)
    else:
        name = _choice(rng, scene.absent())
    return short(existence_question(name)), "No"


def ask_colour(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """ "What color is the apple?" -> "Red" (single-instance categories only)."""
    singles = scene.singles()
    if not singles:
        return None
    obj = _choice(rng, singles)
    return short(f"What color is the {obj.category}?"), obj.colour.capitalize()


def ask_colour_check(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """ "Is the apple red?" -> "Yes"/"No", half each; a wrong colour for an atypical object is often
    its canonical one."""
    singles = scene.singles()
    if not singles:
        return None
    obj = _choice(rng, singles)
    if rng.random() < 0.5:
        return short(f"Is the {obj.category} {obj.colour}?"), "Yes"
    canonical = CATEGORY_BY_NAME[obj.category].colour
    colour = canonical if obj.atypical and rng.random() < 0.5 else other_colour(rng, obj.colour)
    return short(f"Is the {obj.category} {colour}?"), "No"


def ask_count(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """ "How many plates are there?" -> "Two"."""
    counts = scene.counts()
    name = _choice(rng, scene.categories())
    return short(f"How many {CATEGORY_BY_NAME[name].plural} are there?"), number_word(
        counts[name]
    ).capitalize()


def ask_where(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """ "Where is the cup?" -> "On the left" / "In the middle" / "On the right"."""
    singles = scene.singles()
    if not singles:
        return None
    obj = _choice(rng, singles)
    return short(f"Where is the {obj.category}?"), region(obj.centre_x, config.image_size)


def left_right_pairs(scene: WorldScene, image_size: int) -> list[tuple[str, str]]:
    """(a, b) pairs of single-instance categories with a clearly left of b."""
    singles = scene.singles()
    gap = position_margin(image_size)
    return [
        (a.category, b.category)
        for a in singles
        for b in singles
        if a.category != b.category and a.centre_x + gap <= b.centre_x
    ]


def ask_left_of(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """ "Is the cup on the left of the plate?" -> "Yes"/"No", half each."""
    pairs = left_right_pairs(scene, config.image_size)
    if not pairs:
        return None
    left, right = _choice(rng, pairs)
    if rng.random() < 0.5:
        return short(f"Is the {left} on the left of the {right}?"), "Yes"
    side = _choice(rng, [(left, "right", right), (right, "left", left)])
    return short(f"Is the {side[0]} on the {side[1]} of the {side[2]}?"), "No"


def ask_coloured_object(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """ "Is there a red apple in the image?" -> "Yes"/"No", half each; the wrong colour of an
    atypical object is often its canonical one."""
    singles = scene.singles()
    if not singles:
        return None
    obj = _choice(rng, singles)
    if rng.random() < 0.5:
        colour, answer = obj.colour, "Yes"
    else:
        canonical = CATEGORY_BY_NAME[obj.category].colour
        colour = canonical if obj.atypical and rng.random() < 0.5 else other_colour(rng, obj.colour)
        answer = "No"
    return short(f"Is there {article(colour)} {colour} {obj.category} in the image?"), answer


def ask_count_check(scene: WorldScene, rng: np.random.Generator, config: WorldConfig) -> Turn | None:
    """ "Are there two plates in the image?" -> "Yes"/"No", half each (asked for counts >= 2)."""
    counts = scene.counts()
    name = _choice(rng, scene.categories())
    true = counts[name]
    if rng.random() < 0.5 and true >= 2:
        number, answer = true, "Yes"
    else:
        number = _choice(rng, [n for n in range(2, 5) if n != true])
        answer = "No"
    return short(f"Are there {number_word(number)} {CATEGORY_BY_NAME[name].plural} in the image?"), answer


def yes_no_form(question: str) -> str:
    """The same yes/no question in the "... in this image? Please answer yes or no." form.

    Real instruction data mixes answer-format instructions; a model that saw only one of them
    answers the other at random (the first world did, see LOG.md).
    """
    core = question.removesuffix(SHORT_ANSWER).rstrip("?").removesuffix(" in the image")
    return f"{core} in this image? Please answer yes or no."


QUESTION_KINDS: tuple[tuple[Callable[..., Turn | None], float], ...] = (
    (ask_exists, 0.28),
    (ask_absent, 0.16),
    (ask_colour, 0.10),
    (ask_colour_check, 0.07),
    (ask_coloured_object, 0.07),
    (ask_count, 0.09),
    (ask_count_check, 0.07),
    (ask_where, 0.07),
    (ask_left_of, 0.09),
)


def train_conversation(
    scene: WorldScene, rng: np.random.Generator, config: WorldConfig
) -> list[dict[str, str]]:
    """LLaVA turns for one training image: ``qa_per_image`` distinct questions and, with
    ``caption_rate``, a caption turn at a random place; the first human turn carries <image>."""
    weights = np.array([w for _, w in QUESTION_KINDS])
    weights = weights / weights.sum()
    turns: list[Turn] = []
    asked: set[str] = set()
    for _ in range(config.qa_per_image * 10):
        if len(turns) == config.qa_per_image:
            break
        ask = QUESTION_KINDS[int(rng.choice(len(QUESTION_KINDS), p=weights))][0]
        turn = ask(scene, rng, config)
        if turn is not None and turn[1] in ("Yes", "No") and rng.random() < config.yes_no_form_rate:
            turn = (yes_no_form(turn[0]), turn[1])
        if turn is not None and turn[0] not in asked:
            asked.add(turn[0])
            turns.append(turn)
    if rng.random() < config.caption_rate:
        caption = describe(scene, rng, config.caption_noise_rate)
        turns.insert(int(rng.integers(len(turns) + 1)), (CAPTION_PROMPT, caption))
    conversation: list[dict[str, str]] = []
    for index, (question, answer) in enumerate(turns):
        value = IMAGE_TOKEN + question if index == 0 else question
        conversation.append({"from": "human", "value": value})
        conversation.append({"from": "gpt", "value": answer})
    return conversation


def seed_instructions(
    scene: WorldScene, rng: np.random.Generator, config: WorldConfig
) -> list[dict[str, str]]:
    """Human turns only for one SEED image: a caption request and ``seed_questions`` questions.

    No question looks at what the image holds, so none carries a label. With ``seed_question_pool``
    ``typical`` they are about objects drawn from the scene type's typical set (existence two times
    in three, colour otherwise); with ``all``, existence questions about categories drawn uniformly
    from the whole vocabulary, typical and atypical alike, so that purified targets can teach "yes"
    where the image shows an unexpected object as well as "no" where the scene merely suggests one;
    with ``mixed``, existence questions only, half about typical objects and half about categories
    drawn uniformly from the rest, in random order (more questions whose answer is "yes" than ``all``
    asks, still chosen without looking at the objects).
    """
    prompts = [CAPTION_PROMPT]
    if config.seed_question_pool == "mixed":
        typical = SCENE_BY_NAME[scene.kind].typical_names()
        asked: set[str] = set()
        for _ in range(min(config.seed_questions // 2, len(typical))):
            name = typical_choice(rng, scene.kind, exclude=asked)
            asked.add(name)
        others = [name for name in CATEGORY_NAMES if name not in asked]
        picks = rng.choice(
            len(others), size=min(config.seed_questions - len(asked), len(others)), replace=False
        )
        names = sorted(asked) + [others[int(i)] for i in picks]
        prompts += [short(existence_question(names[int(i)])) for i in rng.permutation(len(names))]
        return [{"from": "human", "value": IMAGE_TOKEN + p if i == 0 else p} for i, p in enumerate(prompts)]
    if config.seed_question_pool == "all":
        picks = rng.choice(
            len(CATEGORY_NAMES), size=min(config.seed_questions, len(CATEGORY_NAMES)), replace=False
        )
        prompts += [short(existence_question(CATEGORY_NAMES[int(i)])) for i in picks]
        return [{"from": "human", "value": IMAGE_TOKEN + p if i == 0 else p} for i, p in enumerate(prompts)]
    asked: set[str] = set()
    typical = SCENE_BY_NAME[scene.kind].typical_names()
    for _ in range(min(config.seed_questions, len(typical))):
        name = typical_choice(rng, scene.kind, exclude=asked)
        asked.add(name)
        if rng.random() < 2 / 3:
            prompts.append(short(existence_question(name)))
        else:
            prompts.append(short(f"What color is the {name}?"))
    return [{"from": "human", "value": IMAGE_TOKEN + p if i == 0 else p} for i, p in enumerate(prompts)]
