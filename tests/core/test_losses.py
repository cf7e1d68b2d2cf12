from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seed.core.losses import distillation_loss, forward_kl, reverse_kl
from seed.core.purify import purify_logits, sparsify_targets
from seed.errors import ConfigError


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test sees the same random inputs."""
    torch.manual_seed(0)


NEG_INF = float("-inf")


def random_targets(batch=2, seq=5, vocab=12, top_k=4, seed=0):
    """Sparse targets with supports of varying size (some padded) and the dense target they encode."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randn(batch, seq, vocab, generator=gen) * 2
    noised = torch.randn(batch, seq, vocab, generator=gen) * 2
    log_p, support = purify_logits(clean, noised, cd_alpha=1.0, cd_beta=0.15)
    sparse = sparsify_targets(log_p, support, top_k=top_k)
    student = torch.randn(batch, seq, vocab, generator=gen)
    mask = torch.rand(batch, seq, generator=gen) > 0.3
    mask[0, 0] = True
    return student, sparse, mask


def dense_reverse_reference(student, sparse, mask):
    """Per-token reverse KL from dense tensors: KL(q~ || P*) via F.kl_div, minus log q(V)."""
    vocab = student.shape[-1]
    losses = []
    for b, s in mask.nonzero().tolist():
        lp = sparse.log_probs[b, s].double()
        real = lp.isfinite()
        idx = sparse.indices[b, s].long()[real]
        log_q = torch.log_softmax(student[b, s].double(), -1)
        in_support = torch.zeros(vocab, dtype=torch.bool)
        in_support[idx] = True
        log_q_v = torch.logsumexp(log_q[in_support], -1)
        log_q_tilde = log_q[idx] - log_q_v
        # kl_div(input, target, log_target=True) = sum exp(target) (target - input) = KL(target || input)
        kl = F.kl_div(lp[real], log_q_tilde, reduction="sum", log_target=True)
        losses.append(kl - log_q_v)
    return torch.stack(losses).mean()


def dense_forward_reference(student, sparse, mask):
    losses = []
    for b, s in mask.nonzero().tolist():
        lp = sparse.log_probs[b, s].double()
        real = lp.isfinite()
        idx = sparse.indices[b, s].long()[real]
        log_q = torch.log_softmax(student[b, s].double(), -1)
        losses.append(F.kl_div(log_q[idx], lp[real], reduction="sum", log_target=True))
    return torch.stack(losses).mean()


def test_reverse_kl_matches_dense_kl_div():
    student, sparse, mask = random_targets()
    assert int(sparse.counts().min()) < sparse.top_k  # padding is exercised
    loss = reverse_kl(student, sparse.indices, sparse.log_probs, mask)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    torch.testing.assert_close(
        loss.double(), dense_reverse_reference(student, sparse, mask), rtol=1e-5, atol=1e-5
    )


def test_forward_kl_matches_dense_kl_div():
    student, sparse, mask = random_targets(seed=1)
    loss = forward_kl(student, sparse.indices, sparse.log_probs, mask)
    torch.testing.assert_close(
        loss.double(), dense_forward_reference(student, sparse, mask), rtol=1e-5, atol=1e-5
    )


def test_identical_distributions_give_zero():
    vocab = 10
    target = torch.log_softmax(torch.randn(2, 3, 4), -1)  # support = ids 2, 5, 7, 9
    indices = torch.tensor([2, 5, 7, 9], dtype=torch.int32).expand(2, 3, 4).contiguous()
    student = torch.full((2, 3, vocab), -1e4)
    student.scatter_(-1, indices.long(), target)
    mask = torch.ones(2, 3, dtype=torch.bool)
    for fn in (reverse_kl, forward_kl):
        assert float(fn(student, indices, target, mask)) == pytest.approx(0.0, abs=1e-5)


def test_reverse_kl_is_positive_away_from_target():
    student, sparse, mask = random_targets(seed=2)
    assert float(reverse_kl(student, sparse.indices, sparse.log_probs, mask)) > 0.01


def test_one_token_support_is_finite_and_equals_minus_log_q():
    student = torch.randn(1, 2, 6)
    indices = torch.tensor([[[3, 0, 0], [1, 0, 0]]], dtype=torch.int32)
    log_probs = torch.tensor([[[0.0, NEG_INF, NEG_INF], [0.0, NEG_INF, NEG_INF]]], dtype=torch.float16)
    mask = torch.ones(1, 2, dtype=torch.bool)
    log_q = torch.log_softmax(student, -1)
    expected = -(log_q[0, 0, 3] + log_q[0, 1, 1]) / 2
    for fn in (reverse_kl, forward_kl):
        loss = fn(student.requires_grad_(), indices, log_probs, mask)
        assert torch.isfinite(loss)
        torch.testing.assert_close(loss, expected.detach())
        loss.backward()
        assert torch.isfinite(student.grad).all()
        student.grad = None


@pytest.mark.parametrize("kind", ["reverse_kl", "forward_kl"])
def test_all_masked_gives_zero_with_gradient(kind):
    student, sparse, mask = random_targets()
    student.requires_grad_()
    loss = distillation_loss(kind, student, sparse.indices, sparse.log_probs, torch.zeros_like(mask))
    assert loss.detach().item() == 0.0
    loss.backward()
    assert student.grad is not None and bool((student.grad == 0).all())


@pytest.mark.parametrize("kind", ["reverse_kl", "forward_kl"])
def test_token_without_support_carries_no_loss_and_no_nan(kind):
    student, sparse, mask = random_targets()
    log_probs = sparse.log_probs.clone()
    log_probs[0, 0] = NEG_INF  # all padding, but masked in
    student.requires_grad_()
    loss = distillation_loss(kind, student, sparse.indices, log_probs, mask)
    without_first = mask.clone()
    without_first[0, 0] = False
    expected = distillation_loss(kind, student, sparse.indices, sparse.log_probs, without_first)
    assert int(without_first.sum()) > 0
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(student.grad).all()


@pytest.mark.parametrize("fn", [reverse_kl, forward_kl])
def test_gradcheck_float64(fn):
    student, sparse, mask = random_targets(batch=1, seq=3, vocab=6, top_k=3, seed=3)
    student = student.double().requires_grad_()
    log_probs = sparse.log_probs.double()
    assert torch.autograd.gradcheck(lambda x: fn(x, sparse.indices, log_probs, mask), (student,))


@pytest.mark.parametrize("fn", [reverse_kl, forward_kl])
def test_bf16_student_gives_finite_float32(fn):
    student, sparse, mask = random_targets(seed=4)
    student = (student * 8).to(torch.bfloat16).requires_grad_()
    loss = fn(student, sparse.indices, sparse.log_probs, mask)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert student.grad.dtype == torch.bfloat16 and torch.isfinite(student.grad.float()).all()


def test_reverse_kl_gradient_vanishes_at_renormalised_target():
    # A capped target (tail dropped): the minimiser is P* renormalised on the kept set.
    vocab = 20
    log_p = torch.log_softmax(torch.randn(2, 3, vocab) * 2, -1)
    sparse = sparsify_targets(log_p, torch.ones_like(log_p, dtype=torch.bool), top_k=5)
    assert float(sparse.tail_mass.min()) > 0
    kept = sparse.log_probs.double()
    renormalised = kept - torch.logsumexp(kept, -1, keepdim=True)
    student = torch.full((2, 3, vocab), -1e4, dtype=torch.float64)
    student.scatter_(-1, sparse.indices.long(), renormalised)
    student.requires_grad_()
    mask = torch.ones(2, 3, dtype=torch.bool)
    loss = reverse_kl(student, sparse.indices, sparse.log_probs, mask)
    loss.backward()
    assert student.grad.abs().max() < 1e-8
    # the value is the constant -log(kept mass), not 0, because targets are used as given
    torch.testing.assert_close(loss, -torch.logsumexp(kept, -1).mean().detach())
    # and moving away from the target increases the loss
    nudged = student.detach().clone()
    nudged[..., sparse.indices[0, 0, 0].long()] += 0.3
    assert float(reverse_kl(nudged, sparse.indices, sparse.log_probs, mask)) > loss.detach().item()


def test_unknown_kind_raises_config_error():
    student, sparse, mask = random_targets()
    with pytest.raises(ConfigError, match="reverse_kl"):
        distillation_loss("jsd", student, sparse.indices, sparse.log_probs, mask)


@pytest.mark.parametrize("fn", [reverse_kl, forward_kl])
def test_token_weights_give_the_weighted_mean_of_token_losses(fn):
    student, sparse, mask = random_targets()
    weights = torch.rand(mask.shape) + 0.1
    singles = {}
    for b, s in mask.nonzero().tolist():
        one = torch.zeros_like(mask)
        one[b, s] = True
        if sparse.log_probs[b, s].isfinite().any():
            singles[(b, s)] = fn(student, sparse.indices, sparse.log_probs, one)
    expected = sum(weights[k] * v for k, v in singles.items()) / sum(weights[k] for k in singles)
    got = fn(student, sparse.indices, sparse.log_probs, mask, weights)
    assert torch.allclose(got, expected, atol=1e-6)
    ones = fn(student, sparse.indices, sparse.log_probs, mask, torch.ones(mask.shape))
    assert torch.allclose(ones, fn(student, sparse.indices, sparse.log_probs, mask), atol=1e-6)


def test_zero_weight_tokens_carry_no_gradient():
    student, sparse, mask = random_targets()
    student.requires_grad_(True)
    weights = torch.ones(mask.shape)
    weights[1] = 0.0
    distillation_loss("reverse_kl", student, sparse.indices, sparse.log_probs, mask, weights).backward()
    assert student.grad[1].abs().max() == 0 and student.grad[0].abs().max() > 0
