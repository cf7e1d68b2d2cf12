from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seed.core.lm_loss import turn_mean_nll, turn_weights


def test_turn_weights_split_runs_within_and_across_rows():
    mask = torch.tensor(
        [
            [False, True, True, True, False, True],
            [True, True, False, False, True, False],
        ]
    )
    expected = torch.tensor(
        [
            [0, 1 / 3, 1 / 3, 1 / 3, 0, 1],
            [1 / 2, 1 / 2, 0, 0, 1, 0],
        ]
    )
    # row 0 ends on a turn and row 1 starts on one: still two turns, not one
    assert torch.allclose(turn_weights(mask), expected)


def test_turn_mean_nll_matches_a_hand_computed_reference():
    # vocabulary 2; logits 0 give p = 1/2, logits (log 3, 0) give p(0) = 3/4, p(1) = 1/4
    log3 = math.log(3.0)
    logits = torch.tensor([[[0.0, 0.0], [log3, 0.0], [log3, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[-100, 1, 0, -100, 1]])
    # shifted: position 0 predicts 1 (p 1/2), 1 predicts 0 (p 3/4) -> turn 1; 3 predicts 1 (p 1/2) -> turn 2
    turn1 = (math.log(2) - math.log(0.75)) / 2
    turn2 = math.log(2)
    assert turn_mean_nll(logits, labels).item() == pytest.approx((turn1 + turn2) / 2)


def test_one_token_turns_give_the_token_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 5)
    labels = torch.tensor([[-100, 3, -100, 1, -100, 4, -100], [-100, -100, 2, -100, 0, -100, -100]])
    reference = F.cross_entropy(logits[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert turn_mean_nll(logits, labels).item() == pytest.approx(reference.item())


def test_no_supervised_position_gives_zero_with_a_gradient_path():
    logits = torch.randn(1, 4, 3, requires_grad=True)
    loss = turn_mean_nll(logits, torch.full((1, 4), -100))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None and torch.all(logits.grad == 0)
