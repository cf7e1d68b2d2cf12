from __future__ import annotations

import math

import pytest
import torch

from seed.core.identify import flagged_share, token_confidence
from seed.errors import ConfigError


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test sees the same random inputs."""
    torch.manual_seed(0)


def test_max_prob_hand_computed():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]]))
    conf = token_confidence(logits)
    assert conf.dtype == torch.float32
    torch.testing.assert_close(conf, torch.tensor([0.7, 1 / 3]))


def test_entropy_hand_computed_and_bounds():
    p = torch.tensor([0.7, 0.2, 0.1])
    h = -(p * p.log()).sum()
    conf = token_confidence(p.log(), "entropy")
    assert float(conf) == pytest.approx(1 - float(h) / math.log(3), abs=1e-6)
    uniform = token_confidence(torch.zeros(4), "entropy")
    one_hot = token_confidence(torch.tensor([0.0, -float("inf"), -float("inf")]), "entropy")
    assert float(uniform) == pytest.approx(0.0, abs=1e-6)
    assert float(one_hot) == pytest.approx(1.0)


def test_both_methods_rank_sharper_distributions_higher():
    sharp, flat = torch.tensor([5.0, 0.0, 0.0, 0.0]), torch.tensor([1.0, 0.5, 0.0, 0.0])
    for method in ("max_prob", "entropy"):
        assert token_confidence(sharp, method) > token_confidence(flat, method)


def test_bf16_logits_give_float32_shape_kept():
    logits = torch.randn(2, 5, 11).to(torch.bfloat16)
    for method in ("max_prob", "entropy"):
        conf = token_confidence(logits, method)
        assert conf.shape == (2, 5) and conf.dtype == torch.float32
        assert bool(((conf >= 0) & (conf <= 1)).all())


def test_unknown_method_raises_config_error():
    with pytest.raises(ConfigError, match="max_prob"):
        token_confidence(torch.zeros(3), "margin")


def test_flagged_share():
    conf = torch.tensor([[0.1, 0.9, 0.4], [0.2, 0.95, 0.5]])
    mask = torch.tensor([[True, True, False], [True, False, True]])
    # masked-in: 0.1, 0.9, 0.2, 0.5 -> below 0.5: 0.1, 0.2 -> 2/4
    assert flagged_share(conf, mask, 0.5) == pytest.approx(0.5)
    assert flagged_share(conf, torch.zeros_like(mask), 0.5) == 0.0
    assert flagged_share(conf, mask.int(), 1.0) == 1.0
