"""seed.model.student: sample weights (distill.balance) and their stacking."""

from __future__ import annotations

import pytest
import torch

from seed.base.tiny import load_tiny, save_tiny
from seed.core.purify import SparseTargets
from seed.model.generate import yes_no_token_ids
from seed.model.student import DistillSample, answer_balanced, stack_targets, stack_weights
from seed.model.trainer import counted_tokens


def _sample(name: str, first: int, tokens: int, weight: float = 1.0) -> DistillSample:
    indices = torch.full((tokens, 2), 5, dtype=torch.int32)
    indices[0, 0] = first
    log_probs = torch.full((tokens, 2), -0.7, dtype=torch.float16)
    targets = SparseTargets(indices, log_probs, torch.zeros(tokens))
    return DistillSample(name, "x.png", "Is there a cat in the image?", "No.", targets, weight=weight)


def test_stack_weights_repeat_each_sample_weight_over_its_tokens():
    samples = [_sample("a", 1, 2, 2.0), _sample("b", 1, 3, 0.5)]
    weights = stack_weights(samples)
    assert weights.tolist() == [[2.0, 2.0, 0.5, 0.5, 0.5]]
    assert weights.shape == stack_targets(samples)[0].shape[:2]
    assert stack_weights([_sample("a", 1, 2), _sample("b", 1, 3)]) is None  # unit weights: plain mean


def test_counted_tokens_sums_weights_of_tokens_with_a_target():
    log_probs = torch.zeros(1, 3, 2)
    log_probs[0, 1] = float("-inf")  # no real slot: carries no loss
    assert counted_tokens(log_probs) == 2
    assert counted_tokens(log_probs, torch.tensor([[2.0, 5.0, 0.5]])) == pytest.approx(2.5)


def test_answer_balanced_weights_by_the_targets_first_answer(tmp_path):
    _, processor = load_tiny(save_tiny("llava", tmp_path / "llava"))
    yes, no = yes_no_token_ids(processor)
    samples = [_sample("y", yes, 2), _sample("n1", no, 2), _sample("n2", no, 3), _sample("n3", no, 1)]
    samples.append(_sample("caption", 11, 4))
    weighted, summary = answer_balanced(samples, processor)
    assert [s.weight for s in weighted] == pytest.approx([2.0, 2 / 3, 2 / 3, 2 / 3, 1.0])
    assert summary == {
        "other": 1,
        "yes": {"samples": 1, "weight": 2.0},
        "no": pytest.approx({"samples": 3, "weight": 2 / 3}),
    }
    assert [s.sample_id for s in weighted] == [s.sample_id for s in samples]
    assert weighted[0].targets is samples[0].targets  # the targets themselves are untouched
