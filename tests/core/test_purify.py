from __future__ import annotations

import math

import pytest
import torch

from seed.core.purify import (
    SparseTargets,
    answer_rate_shift,
    contrast_strength,
    densify,
    plausible_mask,
    purify_logits,
    shift_answer_margin,
    sparsify_targets,
)


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test sees the same random inputs."""
    torch.manual_seed(0)


NEG_INF = float("-inf")


def test_plausible_mask_hand_computed():
    p = torch.tensor([0.5, 0.3, 0.1, 0.06, 0.04])
    # cd_beta = 0.1 -> threshold 0.05: keep 0.5, 0.3, 0.1, 0.06
    assert plausible_mask(p.log(), 0.1).tolist() == [True, True, True, True, False]
    assert plausible_mask(p.log(), 0.5).tolist() == [True, True, False, False, False]
    assert plausible_mask(p.log(), 1.0).tolist() == [True, False, False, False, False]
    assert plausible_mask(p.log(), 0.0).all()


def test_plausible_mask_always_holds_argmax():
    logits = torch.randn(4, 7, 50) * 10
    for beta in (0.0, 0.1, 0.5, 0.999, 1.0):
        mask = plausible_mask(logits, beta)
        assert bool(mask.gather(-1, logits.argmax(-1, keepdim=True)).all())


def test_contrast_strength():
    c = torch.tensor([0.0, 0.25, 1.0])
    torch.testing.assert_close(contrast_strength(c, 2.0), torch.tensor([2.0, 1.5, 0.0]))
    torch.testing.assert_close(contrast_strength(c, 2.0, adaptive=False), torch.tensor([2.0, 2.0, 2.0]))


@pytest.mark.parametrize("adaptive", [True, False])
def test_zero_strength_returns_clean_distribution_on_plausible_set(adaptive):
    clean = torch.randn(2, 3, 20) * 3
    noised = torch.randn(2, 3, 20) * 3
    log_p, support = purify_logits(clean, noised, cd_alpha=0.0, cd_beta=0.1, adaptive=adaptive)
    expected = torch.log_softmax(clean.masked_fill(~support, NEG_INF), dim=-1)
    assert torch.equal(support, plausible_mask(clean, 0.1))
    torch.testing.assert_close(log_p, expected)
    assert bool(support.gather(-1, clean.argmax(-1, keepdim=True)).all())
    assert bool(torch.isneginf(log_p[~support]).all())
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(2, 3))


def hand_example():
    # clean p = [0.6, 0.3, 0.08, 0.02]; beta = 0.1 -> V = {0, 1, 2} (0.02 < 0.06)
    clean = torch.tensor([0.6, 0.3, 0.08, 0.02]).log().view(1, 1, 4)
    noised = torch.tensor([2.0, 3.0, 0.0, 5.0]).view(1, 1, 4)
    return clean, noised


def expected_purified(clean, noised, a):
    lc, n = clean.flatten().tolist(), noised.flatten().tolist()
    s = [(1 + a) * lc[v] - a * n[v] for v in range(3)]
    z = math.log(sum(math.exp(x) for x in s))
    return [x - z for x in s] + [NEG_INF]


def test_hand_computed_adaptive_strength():
    clean, noised = hand_example()
    log_p, support = purify_logits(clean, noised, cd_alpha=1.0, cd_beta=0.1)
    a = 1.0 * (1 - 0.6)  # confidence = max prob = 0.6
    assert support.flatten().tolist() == [True, True, True, False]
    torch.testing.assert_close(log_p.flatten(), torch.tensor(expected_purified(clean, noised, a)))


def test_hand_computed_fixed_strength_and_entropy_confidence():
    clean, noised = hand_example()
    log_p, _ = purify_logits(clean, noised, cd_alpha=1.5, cd_beta=0.1, adaptive=False)
    torch.testing.assert_close(log_p.flatten(), torch.tensor(expected_purified(clean, noised, 1.5)))
    p = torch.tensor([0.6, 0.3, 0.08, 0.02])
    c = 1 - float(-(p * p.log()).sum()) / math.log(4)
    log_p, _ = purify_logits(clean, noised, cd_alpha=2.0, cd_beta=0.1, confidence_method="entropy")
    torch.testing.assert_close(log_p.flatten(), torch.tensor(expected_purified(clean, noised, 2.0 * (1 - c))))


def test_contrast_moves_mass_away_from_prior_token():
    clean, noised = hand_example()
    log_p, _ = purify_logits(clean, noised, cd_alpha=1.0, cd_beta=0.1, adaptive=False)
    # token 1 is favoured by the noised (prior) run: it loses mass relative to the clean p
    assert float(log_p[0, 0, 1].exp()) < 0.3 / (0.6 + 0.3 + 0.08)


def test_bf16_input_gives_finite_float32():
    clean = (torch.randn(2, 4, 64) * 4).to(torch.bfloat16)
    noised = (torch.randn(2, 4, 64) * 4).to(torch.bfloat16)
    log_p, support = purify_logits(clean, noised, 1.0, 0.1)
    assert log_p.dtype == torch.float32
    assert bool(torch.isfinite(log_p[support]).all())
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(2, 4))


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="differ"):
        purify_logits(torch.zeros(1, 2, 5), torch.zeros(1, 2, 6), 1.0, 0.1)


def test_sparse_round_trip_when_support_fits():
    clean, noised = torch.randn(3, 5, 40) * 3, torch.randn(3, 5, 40) * 3
    log_p, support = purify_logits(clean, noised, 1.0, 0.2)
    k = int(support.sum(-1).max())  # the largest support fills k exactly, the others are padded
    assert int(support.sum(-1).min()) < k
    sparse = sparsify_targets(log_p, support, top_k=k)
    assert sparse.indices.dtype == torch.int32 and sparse.indices.shape == (3, 5, k)
    assert sparse.log_probs.dtype == torch.float16 and sparse.tail_mass.dtype == torch.float32
    assert torch.equal(sparse.counts(), support.sum(-1))
    assert bool((sparse.tail_mass == 0).all())
    dense, mask = densify(sparse, 40)
    assert torch.equal(mask, support)
    torch.testing.assert_close(dense, log_p.half().float())  # -inf outside on both sides
    # kept tokens are sorted, most likely first; padding is index 0 with -inf
    lp = sparse.log_probs.float()
    real = lp.isfinite()
    assert bool((sparse.indices[~real] == 0).all())
    assert bool((lp[..., :-1] >= lp[..., 1:]).logical_or(~real[..., 1:]).all())


def test_sparsify_cap_keeps_original_log_probs_and_records_tail():
    log_p = torch.tensor([0.4, 0.3, 0.2, 0.1]).log().view(1, 1, 4)
    support = torch.ones(1, 1, 4, dtype=torch.bool)
    sparse = sparsify_targets(log_p, support, top_k=2)
    assert sparse.indices.flatten().tolist() == [0, 1]
    torch.testing.assert_close(
        sparse.log_probs.float().exp().flatten(), torch.tensor([0.4, 0.3]), atol=1e-3, rtol=0
    )
    assert float(sparse.tail_mass) == pytest.approx(0.3, abs=1e-6)
    # top_k above the vocabulary size is capped at the vocabulary
    assert sparsify_targets(log_p, support, top_k=10).top_k == 4


def test_sparse_indexing_by_mask_flattens_tokens():
    log_p = torch.log_softmax(torch.randn(2, 3, 10), -1)
    sparse = sparsify_targets(log_p, torch.ones(2, 3, 10, dtype=torch.bool), top_k=4)
    mask = torch.tensor([[False, True, True], [True, False, False]])
    picked = sparse[mask]
    assert isinstance(picked, SparseTargets)
    assert picked.indices.shape == (3, 4) and picked.tail_mass.shape == (3,)
    assert torch.equal(picked.indices[2], sparse.indices[1, 0])


def test_sparse_storage_under_two_percent_of_dense_fp16():
    vocab, k = 32000, 32
    log_p = torch.log_softmax(torch.randn(2, 16, vocab), -1)
    sparse = sparsify_targets(log_p, torch.ones_like(log_p, dtype=torch.bool), top_k=k)
    dense_bytes = log_p.half().nbytes
    sparse_bytes = sparse.indices.nbytes + sparse.log_probs.nbytes + sparse.tail_mass.nbytes
    assert sparse.nbytes() == sparse_bytes
    assert sparse_bytes / dense_bytes <= 0.02, sparse_bytes / dense_bytes
    tail = 1 - torch.logsumexp(sparse.log_probs.float(), -1).exp()
    torch.testing.assert_close(sparse.tail_mass, tail, atol=2e-3, rtol=0)


def test_shift_answer_margin_hand_computed():
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, -1.0]], dtype=torch.bfloat16)
    out = shift_answer_margin(logits, torch.tensor([2.0, 0.0]), yes_id=1, no_id=3)
    # yes - no: -2 -> -4 (lowered by the shift), yes + no and every other logit unchanged
    assert torch.equal(out, torch.tensor([[1.0, 1.0, 3.0, 5.0], [0.0, 1.0, 0.0, -1.0]]))
    assert out.dtype == torch.float32 and logits[0, 1] == 2.0  # a copy


def test_answer_rate_shift_hand_computed():
    # fixed strength 1, no cut: the target margin is 2 c - (n - s); sigmoid(s - 1) = sigmoid(1) at s = 2
    shift = answer_rate_shift(torch.tensor([1.0]), torch.tensor([3.0]), 1.0, 0.0, adaptive=False)
    assert shift == pytest.approx(2.0, abs=1e-4)
    # symmetric noised margins around an undecided clean view: no shift keeps the rate at 0.5
    shift = answer_rate_shift(torch.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0]), 1.0, 0.0, adaptive=False)
    assert shift == pytest.approx(0.0, abs=1e-4)
    # adaptive at c = 0: a = alpha / 2 and the target margin is -a (n - s), so s = n
    assert answer_rate_shift(torch.tensor([0.0]), torch.tensor([-1.5]), 3.0, 0.1) == pytest.approx(
        -1.5, abs=1e-4
    )


def test_answer_rate_shift_keeps_the_clean_rate():
    clean, noised = torch.randn(200) * 2 - 1, torch.randn(200) * 2
    shift = answer_rate_shift(clean, noised, 3.0, 0.1)
    clean_logits = torch.stack([clean, torch.zeros(200)], -1)[None]
    noised_logits = torch.stack([noised - shift, torch.zeros(200)], -1)[None]
    target, _ = purify_logits(clean_logits, noised_logits, 3.0, 0.1)
    assert target[0, :, 0].exp().mean().item() == pytest.approx(torch.sigmoid(clean).mean().item(), abs=1e-4)
    unshifted, _ = purify_logits(clean_logits, noised_logits + torch.tensor([shift, 0.0]), 3.0, 0.1)
    assert unshifted[0, :, 0].exp().mean().item() != pytest.approx(
        torch.sigmoid(clean).mean().item(), abs=1e-3
    )


def test_answer_rate_shift_edges():
    assert answer_rate_shift(torch.zeros(0), torch.zeros(0), 3.0, 0.1) == 0.0
    with pytest.raises(ValueError, match="shapes"):
        answer_rate_shift(torch.zeros(3), torch.zeros(2), 3.0, 0.1)
