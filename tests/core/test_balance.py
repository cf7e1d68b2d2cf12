from __future__ import annotations

import pytest

from seed.core.balance import answer_weights, first_answers


def test_first_answers_reads_the_top_first_token():
    assert first_answers([7, 3, 9, None, 7], yes_id=7, no_id=3) == ["yes", "no", None, None, "yes"]


def test_weights_give_each_answer_half_of_their_joint_count():
    answers = ["yes", "no", "no", "no", None]
    weights = answer_weights(answers)
    # n = 4 answers: yes 4 / (2 * 1) = 2, no 4 / (2 * 3) = 2/3; the caption keeps 1
    assert weights == pytest.approx([2.0, 2 / 3, 2 / 3, 2 / 3, 1.0])
    yes = sum(w for a, w in zip(answers, weights, strict=True) if a == "yes")
    no = sum(w for a, w in zip(answers, weights, strict=True) if a == "no")
    assert yes == pytest.approx(no) and yes + no == pytest.approx(4)


def test_balanced_split_and_one_sided_split_keep_unit_weights():
    assert answer_weights(["yes", "no", None]) == [1.0, 1.0, 1.0]
    assert answer_weights(["no", "no", None]) == [1.0, 1.0, 1.0]  # nothing to balance against
    assert answer_weights([]) == []


def test_unknown_answer_is_refused():
    with pytest.raises(ValueError, match="maybe"):
        answer_weights(["yes", "maybe"])
