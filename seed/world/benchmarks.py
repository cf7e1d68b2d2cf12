"""POPE and MME items built from world scenes, the way the benchmarks' own builders do it.

POPE (Li et al. 2023): per image, 3 present categories ("yes"), each followed by one absent
category ("no"). The absent one is chosen uniformly (random), by annotation frequency (popular: the
most frequent categories missing from the image), or by co-occurrence with the present category
(adversarial: the categories seen most often together with it, missing from the image). The
question always reads "Is there a {name} in the image?" with article "a", as in the official files.

MME hallucination subset: per image two yes/no questions, one answered Yes and one No, in MME's
phrasing ("... in this image? Please answer yes or no.").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from seed.eval.pope import POPE_SAMPLED_SPLITS
from seed.world.scene import WorldScene, atypical_names, other_colour, typical_choice
from seed.world.text import left_right_pairs
from seed.world.vocab import CATEGORY_BY_NAME, CATEGORY_NAMES, SCENE_BY_NAME, article, number_word

POPE_PER_IMAGE = 3
MME_SUFFIX = " Please answer yes or no."


def category_frequency(category_sets: Iterable[set[str]]) -> Counter[str]:
    """Number of images containing each category."""
    counts: Counter[str] = Counter()
    for present in category_sets:
        counts.update(present)
    return counts


def cooccurrence(category_sets: Iterable[set[str]]) -> dict[str, Counter[str]]:
    """For each category, the number of images in which it appears together with each other one."""
    table: dict[str, Counter[str]] = {name: Counter() for name in CATEGORY_NAMES}
    for present in category_sets:
        for a in present:
            table[a].update(b for b in present if b != a)
    return table


def pope_negatives(
    split: str,
    present: list[str],
    chosen: list[str],
    rng: np.random.Generator,
    frequency: Counter[str],
    table: dict[str, Counter[str]],
) -> list[str]:
    """One distinct absent category per chosen present one, by the rule of ``split``.

    ``present`` is every category in the image (none of them may be a negative); ``chosen`` the
    present categories asked about. Ties break by frequency, then by vocabulary order.
    """
    absent = [name for name in CATEGORY_NAMES if name not in set(present)]
    order = {name: i for i, name in enumerate(CATEGORY_NAMES)}
    if split == "random":
        picks = rng.choice(len(absent), size=len(chosen), replace=False)
        return [absent[int(i)] for i in picks]
    if split == "popular":
        ranked = sorted(absent, key=lambda n: (-frequency[n], order[n]))
        return ranked[: len(chosen)]
    if split == "adversarial":
        negatives: list[str] = []
        for name in chosen:
            pool = [n for n in absent if n not in negatives]
            negatives.append(min(pool, key=lambda n, name=name: (-table[name][n], -frequency[n], order[n])))
        return negatives
    raise ValueError(f"unknown POPE split {split!r}; expected one of {POPE_SAMPLED_SPLITS}")


def pope_question(name: str) -> str:
    """The official POPE wording (article "a" whatever the noun)."""
    return f"Is there a {name} in the image?"


def build_pope(
    images: list[tuple[str, WorldScene]],
    rng: np.random.Generator,
    frequency: Counter[str],
    table: dict[str, Counter[str]],
) -> dict[str, list[dict]]:
    """POPE rows per split for (file_name, scene) pairs, each scene holding >= 3 distinct categories.

    The same present categories are asked in every split; rows alternate yes / no, question ids
    count from 1 in each split.
    """
    rows: dict[str, list[dict]] = {split: [] for split in POPE_SAMPLED_SPLITS}
    for file_name, scene in images:
        present = sorted(scene.categories(), key=CATEGORY_NAMES.index)
        if len(present) < POPE_PER_IMAGE:
            raise ValueError(
                f"{file_name}: POPE needs {POPE_PER_IMAGE} distinct categories, has {len(present)}"
            )
        picks = rng.choice(len(present), size=POPE_PER_IMAGE, replace=False)
        chosen = [present[int(i)] for i in picks]
        for split in POPE_SAMPLED_SPLITS:
            negatives = pope_negatives(split, present, chosen, rng, frequency, table)
            for yes, no in zip(chosen, negatives, strict=True):
                for name, label in ((yes, "yes"), (no, "no")):
                    rows[split].append(
                        {
                            "question_id": len(rows[split]) + 1,
                            "image": file_name,
                            "text": pope_question(name),
                            "label": label,
                        }
                    )
    return rows


def build_pope_counterfactual(images: list[tuple[str, WorldScene]], rng: np.random.Generator) -> list[dict]:
    """Rows of the counterfactual POPE split, in the official format, for (file_name, scene) pairs.

    Per image, 3 present categories that are atypical for its scene type ("yes"), each followed by
    one absent category from the scene's typical set ("no"), drawn by the scene's weights without
    repeats. A model that answers from the scene prior gets both halves wrong; one that reads the
    objects gets both right. Each scene must hold >= 3 distinct atypical categories.
    """
    rows: list[dict] = []
    for file_name, scene in images:
        present = set(scene.categories())
        atypical = [name for name in atypical_names(scene.kind) if name in present]
        if len(atypical) < POPE_PER_IMAGE:
            raise ValueError(
                f"{file_name}: the counterfactual split needs {POPE_PER_IMAGE} atypical categories, "
                f"has {len(atypical)}"
            )
        picks = rng.choice(len(atypical), size=POPE_PER_IMAGE, replace=False)
        chosen = [atypical[int(i)] for i in picks]
        asked: set[str] = set(present)
        for yes in chosen:
            no = typical_choice(rng, scene.kind, exclude=asked)
            asked.add(no)
            for name, label in ((yes, "yes"), (no, "no")):
                rows.append(
                    {
                        "question_id": len(rows) + 1,
                        "image": file_name,
                        "text": pope_question(name),
                        "label": label,
                    }
                )
    return rows


@dataclass
class MmeItem:
    """One MME image's two questions (Yes first, then No) and what they ask about."""

    subtask: str
    yes: str
    no: str
    meta: dict = field(default_factory=dict)

    def lines(self) -> str:
        """The .txt content: two "question<TAB>answer" lines."""
        return f"{self.yes}\tYes\n{self.no}\tNo\n"


def _object_meta(scene: WorldScene, category: str) -> dict:
    obj = next(o for o in scene.objects if o.category == category)
    canonical = CATEGORY_BY_NAME[category].colour
    return {
        "object": category,
        "colour": obj.colour,
        "canonical_colour": canonical,
        "atypical": obj.colour != canonical,
        "count": scene.counts()[category],
        "size": obj.size,
        "occluded": obj.occluded,
    }


def _count_question(name: str, count: int) -> str:
    if count == 1:
        return f"Is there one {name} in this image?{MME_SUFFIX}"
    return f"Are there {number_word(count)} {CATEGORY_BY_NAME[name].plural} in this image?{MME_SUFFIX}"


def mme_existence(scene: WorldScene, rng: np.random.Generator) -> MmeItem:
    """Yes: a present category. No: an absent typical object of the scene (the co-occurrence trap),
    or any absent one when every typical object is present."""
    present = scene.categories()
    name = present[int(rng.integers(len(present)))]
    missing = [n for n in SCENE_BY_NAME[scene.kind].typical_names() if n not in set(present)]
    if missing:
        absent = typical_choice(rng, scene.kind, exclude=set(present))
    else:
        pool = scene.absent()
        absent = pool[int(rng.integers(len(pool)))]
    meta = _object_meta(scene, name) | {"absent_object": absent}
    return MmeItem(
        "existence",
        f"Is there {article(name)} {name} in this image?{MME_SUFFIX}",
        f"Is there {article(absent)} {absent} in this image?{MME_SUFFIX}",
        meta,
    )


def mme_count(scene: WorldScene, rng: np.random.Generator) -> MmeItem:
    """Yes: the true count of a present category. No: one more or one fewer (never zero)."""
    present = scene.categories()
    name = present[int(rng.integers(len(present)))]
    count = scene.counts()[name]
    wrong = count + 1 if count == 1 or rng.random() < 0.5 else count - 1
    meta = _object_meta(scene, name) | {"wrong_count": wrong}
    return MmeItem("count", _count_question(name, count), _count_question(name, wrong), meta)


def mme_position(scene: WorldScene, rng: np.random.Generator, image_size: int) -> MmeItem | None:
    """Yes: the true left/right relation of two single-instance objects. No: the swapped relation.
    None when the scene has no such pair."""
    pairs = left_right_pairs(scene, image_size)
    if not pairs:
        return None
    left, right = pairs[int(rng.integers(len(pairs)))]
    if rng.random() < 0.5:
        yes = f"Is the {left} on the left of the {right} in this image?{MME_SUFFIX}"
        no = f"Is the {left} on the right of the {right} in this image?{MME_SUFFIX}"
        meta = _object_meta(scene, left) | {"reference_object": right}
    else:
        yes = f"Is the {right} on the right of the {left} in this image?{MME_SUFFIX}"
        no = f"Is the {right} on the left of the {left} in this image?{MME_SUFFIX}"
        meta = _object_meta(scene, right) | {"reference_object": left}
    return MmeItem("position", yes, no, meta)


def mme_color(scene: WorldScene, rng: np.random.Generator, atypical: bool) -> MmeItem | None:
    """Colour item about a single-instance object, recoloured in place to be atypical or canonical.

    Yes: its true colour. No: for an atypical object its canonical colour (what the prior says),
    for a typical one a random other colour. None when no category has a single instance.
    """
    singles = scene.singles()
    if not singles:
        return None
    obj = singles[int(rng.integers(len(singles)))]
    canonical = CATEGORY_BY_NAME[obj.category].colour
    obj.colour = other_colour(rng, canonical) if atypical else canonical
    wrong = canonical if atypical else other_colour(rng, canonical)
    name = obj.category
    yes = f"Is there {article(obj.colour)} {obj.colour} {name} in this image?{MME_SUFFIX}"
    no = f"Is there {article(wrong)} {wrong} {name} in this image?{MME_SUFFIX}"
    meta = _object_meta(scene, name) | {"wrong_colour": wrong}
    return MmeItem("color", yes, no, meta)
