"""Answer balance: per-sample weights that give a split's "yes" and "no" answers an equal say.

A label-free SEED split asks about every category, so most of its questions are about absent objects:
the purified targets answer "no" far more often than "yes", and the contrast sharpens each answer
further in its own direction. A student distilled on such targets learns the split's lean as a
constant pull toward "no" on every question, which costs recall wherever the answer is "yes".

`answer_weights` reweights the distillation loss (``distill.balance: answer``) so that samples whose
target answers "yes" and samples whose target answers "no" each carry half of their joint weight, and
that joint weight stays their count:

    n = n_yes + n_no
    w_yes = n / (2 n_yes)        w_no = n / (2 n_no)        w = 1 for every other sample

A sample's answer is its target's most likely *first* token (`first_answers`), the model's own
purified answer: no label is read. Everything here is plain Python on ids and strings.
"""

from __future__ import annotations

from collections.abc import Sequence

ANSWERS = ("yes", "no")


def first_answers(top_ids: Sequence[int | None], yes_id: int, no_id: int) -> list[str | None]:
    """Per sample, ``"yes"`` or ``"no"`` if its target's most likely first token is ``yes_id`` or
    ``no_id``, else None (a caption, or a sample without a target: ``None`` in ``top_ids``)."""
    names = {yes_id: "yes", no_id: "no"}
    return [None if top is None else names.get(int(top)) for top in top_ids]


def answer_weights(answers: Sequence[str | None]) -> list[float]:
    """The weight of each sample: ``n / (2 n_a)`` for answer ``a`` in ("yes", "no"), 1 otherwise.

    ``answers`` holds "yes", "no" or None per sample (`first_answers`). If either answer is absent,
    there is nothing to balance against and every weight is 1.
    """
    unknown = sorted({a for a in answers if a is not None and a not in ANSWERS})
    if unknown:
        raise ValueError(f"unknown answer(s) {unknown}; expected 'yes', 'no' or None")
    counts = {a: sum(1 for x in answers if x == a) for a in ANSWERS}
    if min(counts.values()) == 0:
        return [1.0] * len(answers)
    total = sum(counts.values())
    weight = {a: total / (2 * counts[a]) for a in ANSWERS}
    return [1.0 if a is None else weight[a] for a in answers]
