"""seed.model.trainer: the pure pieces of the training loop."""

from __future__ import annotations

import pytest

from seed.model.trainer import lr_factor, sample_order


def test_lr_factor_warms_up_then_decays_linearly():
    assert [lr_factor(s, 6, 2) for s in range(6)] == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert [lr_factor(s, 3, 0) for s in range(3)] == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert sample_order(5, 0, 0) == sample_order(5, 0, 0) and sorted(sample_order(5, 0, 1)) == list(range(5))
