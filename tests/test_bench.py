"""The pure helpers of bench/: FLOP counts, the power-law fit, target bytes, truncation KL, acceptance."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.metrics import (  # noqa: E402
    DecoderShape,
    VisionShape,
    decoder_flops,
    dense_bytes_per_token,
    fit_exponent,
    llava_shapes,
    matmul_flops,
    projector_flops,
    renormalised_topk_kl,
    sparse_bytes_per_token,
    truncation_kl,
    vision_flops,
)
from bench.report import num, render  # noqa: E402
from bench.run import acceptance  # noqa: E402
from seed.core.purify import SparseTargets, sparsify_targets  # noqa: E402

# ---------------------------------------------------------------------------------------------------
# FLOP counts


def test_matmul_flops_counts_a_multiply_add_as_two():
    assert matmul_flops(2, 3, 4) == 48


def test_decoder_flops_by_hand():
    # hidden 2, intermediate 3, 1 layer, 1 head of dim 2, vocab 5; one sequence of 2 tokens, 1 logit.
    shape = DecoderShape(hidden=2, intermediate=3, layers=1, heads=1, kv_heads=1, head_dim=2, vocab=5)
    # per token: q, o 2*2 each, k, v 2*2 each, gate/up/down 2*3 each -> 34 multiply-adds -> 68 FLOPs;
    # 2 tokens: 136; attention: QK^T and AV, 2 * (2 * 2 * 2) each -> 32; head: 2 * 2 * 5 -> 20.
    assert decoder_flops(shape, batch=1, seq=2, logit_positions=1) == 136 + 32 + 20
    two_layers = DecoderShape(2, 3, 2, 1, 1, 2, 5)
    assert decoder_flops(two_layers, 1, 2, 1) == 2 * (136 + 32) + 20


def test_decoder_flops_is_two_per_weight_per_token_plus_attention():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    shape = DecoderShape(16, 24, 2, 4, 2, 4, 50)
    # One token: every Linear weight once (lm_head included), attention over a sequence of 1.
    assert decoder_flops(shape, batch=1, seq=1, logit_positions=1) == 2 * linear + 2 * 4 * 4 * 4


def test_vision_and_projector_flops_by_hand():
    shape = VisionShape(hidden=2, intermediate=4, layers=1, patch_size=2, image_size=4, channels=3)
    # 4 patches of 2x2x3 pixels -> 2: 2*4*12*2 = 192; 5 tokens (CLS) x 2*(4*2*2 + 2*2*4) = 320;
    # attention 4 * 5 * 5 * 2 = 200.
    assert vision_flops(shape, images=1) == 192 + 320 + 200
    assert vision_flops(shape, images=3) == 3 * (192 + 320 + 200)
    assert projector_flops(vision_hidden=3, text_hidden=2, image_tokens=4) == 2 * 4 * 3 * 2 + 2 * 4 * 2 * 2


def test_llava_shapes_read_a_transformers_config():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=16,
            patch_size=4,
        ),
        text_config=LlamaConfig(
            vocab_size=40,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
        ),
    )
    vision, decoder = llava_shapes(config)
    assert vision == VisionShape(8, 16, 2, 4, 16)
    assert vision.patches == 16
    assert decoder == DecoderShape(32, 48, 3, 4, 2, 8, 40)


# ---------------------------------------------------------------------------------------------------
# Power-law fit


def test_fit_exponent_recovers_an_exact_power_law():
    slope, prefactor = fit_exponent([1, 2, 4, 8], [3 * x**2 for x in [1, 2, 4, 8]])
    assert slope == pytest.approx(2.0)
    assert prefactor == pytest.approx(3.0)


def test_fit_exponent_by_hand_least_squares():
    # log2 x = 0, 1, 2 and log2 y = 0, 1, 3: slope = cov / var = 3 / 2; intercept 4/3 - 3/2 = -1/6 (log2).
    slope, prefactor = fit_exponent([1, 2, 4], [1, 2, 8])
    assert slope == pytest.approx(1.5)
    assert prefactor == pytest.approx(2 ** (-1 / 6))


@pytest.mark.parametrize(
    ("xs", "ys"), [([1], [1]), ([1, 2], [1]), ([1, 0], [1, 2]), ([1, 2], [1, -2]), ([2, 2], [1, 3])]
)
def test_fit_exponent_rejects_what_it_cannot_fit(xs, ys):
    with pytest.raises(ValueError):
        fit_exponent(xs, ys)


# ---------------------------------------------------------------------------------------------------
# Target bytes and truncation KL


def test_bytes_per_token():
    assert sparse_bytes_per_token(32) == 32 * 4 + 32 * 2 + 4 == 196
    assert dense_bytes_per_token(32000) == 64000
    assert sparse_bytes_per_token(32) / dense_bytes_per_token(32000) == pytest.approx(0.0030625)


def _sparse(probs: list[float], top_k: int) -> tuple[torch.Tensor, SparseTargets]:
    p = torch.tensor([probs])
    log_p = p.log()  # zero probabilities are -inf: outside the support
    return log_p, sparsify_targets(log_p, p > 0, top_k)


def test_truncation_kl_by_hand():
    log_p, sparse = _sparse([0.5, 0.3, 0.15, 0.05], top_k=2)
    # kept 0.5, 0.3; tail 0.2 spread as 0.1 on each dropped token:
    # KL = 0.15 ln(0.15 / 0.1) + 0.05 ln(0.05 / 0.1) (kept terms vanish up to float16 rounding).
    expected = 0.15 * math.log(1.5) + 0.05 * math.log(0.5)
    assert truncation_kl(log_p, sparse).item() == pytest.approx(expected, abs=2e-4)
    # a tail that is already even loses nothing
    log_p, sparse = _sparse([0.5, 0.3, 0.1, 0.1], top_k=2)
    assert abs(truncation_kl(log_p, sparse).item()) < 2e-4


def test_truncation_kl_is_float16_rounding_when_the_support_fits():
    log_p, sparse = _sparse([0.5, 0.3, 0.15, 0.05], top_k=4)
    assert abs(truncation_kl(log_p, sparse).item()) < 1e-5


@pytest.mark.parametrize("probs", [[0.6, 0.4, 0.0, 0.0], [0.0, 0.7, 0.3, 0.0]])
def test_truncation_kl_ignores_padding_slots(probs):
    # top_k 3 over a support of 2: one padding slot pointing at token 0, which must keep its own value.
    log_p, sparse = _sparse(probs, top_k=3)
    assert not sparse.log_probs.isfinite().all()
    assert abs(truncation_kl(log_p, sparse).item()) < 1e-5


def test_renormalised_topk_kl_is_minus_log_kept_mass():
    _, sparse = _sparse([0.5, 0.3, 0.15, 0.05], top_k=2)
    assert renormalised_topk_kl(sparse).item() == pytest.approx(-math.log(0.8), rel=1e-5)
    _, sparse = _sparse([0.5, 0.5], top_k=2)
    assert renormalised_topk_kl(sparse).item() == 0.0


# ---------------------------------------------------------------------------------------------------
# Acceptance rows and the report


def test_acceptance_passes_fails_and_leaves_missing_values_open():
    results = {
        "decode": {"seed_merged_vs_base": 0.97, "seed_merged_vs_vcd": 1.5},
        "memory": {"adapter_teacher_vs_separate_teacher": 0.4},
        "scaleout": {"two_process_targets_identical": None},
    }
    rows = {r["check"]: r["pass"] for r in acceptance(results)}
    assert rows["decode.seed_merged_vs_base"] is True
    assert rows["decode.seed_merged_vs_vcd"] is False
    assert rows["memory.adapter_teacher_vs_separate_teacher"] is True
    assert rows["purify.batched_vs_naive"] is None
    assert rows["scaleout.two_process_targets_identical"] is None


def test_report_renders_sections_that_did_not_run_or_failed():
    results = {
        "environment": {
            "device": "cpu",
            "device_name": "test cpu",
            "dtype": "float32",
            "quick": True,
            "torch": "x",
            "transformers": "y",
            "python": "3",
            "threads": 1,
            "cpu_count": 2,
            "date": "today",
            "git_commit": "abc",
            "git_dirty": False,
        },
        "command": "python -m bench.run --only decode",
        "decode": {"error": "RuntimeError: boom"},
        "seconds": {"decode": 1.0},
    }
    results["acceptance"] = acceptance(results)
    text = render(results, ROOT / "reports" / "bench.json")
    assert "**Failed**: `RuntimeError: boom`" in text
    assert text.count("Not run") == 6
    assert "`reports/bench.json`" in text


def test_num_formats():
    assert num(None) == "-"
    assert num(True) == "true"
    assert num(1234567) == "1,234,567"
    assert num(0.000123) == "1.23e-04"
    assert num(0.925) == "0.925"


# ---------------------------------------------------------------------------------------------------
# Vocabulary padding (case (c) of bench/storage.py)


def test_padded_rows_keeps_the_rows_and_fills_the_new_ones():
    from bench.storage import padded_rows

    weight = torch.tensor([[1.0, -2.0], [3.0, 4.5]])
    out = padded_rows(weight, 5, value=-7.0)
    assert out.shape == (5, 2)
    assert torch.equal(out[:2], weight)
    assert torch.equal(out[2:], torch.full((3, 2), -7.0))
    assert torch.equal(padded_rows(torch.tensor([0.5, 1.5]), 3), torch.tensor([0.5, 1.5, 0.0]))
    with pytest.raises(ValueError):
        padded_rows(weight, 1)


def test_pad_vocab_keeps_the_original_logits_and_zeroes_the_new_ones():
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.storage import PAD_LOGIT, pad_vocab

    config = LlamaConfig(
        vocab_size=7,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    ids = torch.tensor([[1, 4, 6, 2, 0]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        padded = pad_vocab(model, 20)
        after = padded(input_ids=ids).logits
    assert after.shape == (1, 5, 20)
    torch.testing.assert_close(after[..., :7], before, rtol=0, atol=1e-6)
    assert torch.equal(after[..., 7:], torch.full((1, 5, 13), PAD_LOGIT))
    assert padded.config.vocab_size == 20
    assert padded.get_input_embeddings().weight.shape == (20, 8)
    assert model.get_output_embeddings().weight.shape == (7, 8)  # the original is left as it was


def test_paired_chair_interval_by_hand():
    from bench.paired_chair import paired_interval

    same = [True, False, True]
    assert paired_interval(same, same, resamples=50) == (0.0, 0.0, 0.0)
    assert paired_interval([True] * 4, [False] * 4, resamples=50) == (-1.0, -1.0, -1.0)
    diff, low, high = paired_interval([True, True, False], [False, True, False], resamples=200)
    assert diff == pytest.approx(-1 / 3) and -1.0 <= low <= diff <= high <= 0.0


def test_paired_chair_refuses_answers_scored_on_another_world(tmp_path):
    import json

    from bench.paired_chair import check_world

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"chair": {"base": {"chair_s": 0.5}, "seed": {"chair_s": 0.25}}}))
    check_world(metrics, {"base": [True, False], "seed": [False, False, True, False]}, tmp_path)
    with pytest.raises(SystemExit, match="CHAIR_s of seed is 0.250, but .* give 0.500; pass --data"):
        check_world(metrics, {"base": [True, False], "seed": [True, False]}, tmp_path)
    check_world(tmp_path / "absent.json", {"base": [True]}, tmp_path)  # no metrics: nothing to compare


def test_gradient_cut_zeroes_only_the_degraded_rows_once():
    from bench.pretrain_variant import gradient_cut

    projector = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        projector.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]))
    projector.register_forward_hook(gradient_cut(current := {"rows": [1], "batch": 3}))
    x = torch.ones(3, 4, 2, requires_grad=True)  # (images, patches, features)
    projector(x).sum().backward()
    # d(sum)/dx = the weight's column sums (4, 6) on kept rows, 0 on the degraded row
    assert x.grad[0].tolist() == [[4.0, 6.0]] * 4
    assert x.grad[1].abs().sum() == 0
    assert x.grad[2].tolist() == [[4.0, 6.0]] * 4
    assert "rows" not in current  # used once: the next forward trains every row
    x.grad = None
    projector(x).sum().backward()
    assert x.grad[1].tolist() == [[4.0, 6.0]] * 4


def test_gradient_cut_refuses_an_output_that_is_not_one_block_per_image():
    from bench.pretrain_variant import gradient_cut

    projector = torch.nn.Linear(2, 3)
    projector.register_forward_hook(gradient_cut({"rows": [0], "batch": 5}))
    with pytest.raises(SystemExit, match="not one block per image"):
        projector(torch.ones(3, 4, 2, requires_grad=True))


def test_ranged_degrade_with_the_full_range_is_pretrains_degrade():
    from bench.pretrain_variant import ranged_degrade
    from seed.stages.pretrain import degrade

    pixels = torch.rand(6, 3, 8, 8)
    current = {}
    ours = ranged_degrade(0, 1000, current)(pixels, 0.5, torch.Generator().manual_seed(3))
    theirs = degrade(pixels, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(ours, theirs)
    assert current["batch"] == 6
    noised = [i for i in range(6) if not torch.equal(ours[i], pixels[i])]
    assert current["rows"] == noised and noised  # the rows it reports are the rows it noised


def test_ranged_degrade_draws_its_steps_from_the_range(monkeypatch):
    import seed.core.noise
    from bench.pretrain_variant import ranged_degrade

    steps = []
    monkeypatch.setattr(
        seed.core.noise, "add_diffusion_noise", lambda x, step, seeds: steps.append(step) or x * 0
    )
    degrade = ranged_degrade(850, 1000, {})
    pixels = torch.ones(64, 3, 2, 2)
    out = degrade(pixels, 1.0, torch.Generator().manual_seed(0))
    assert out.abs().sum() == 0  # every row noised at rate 1
    assert len(steps) == 64 and min(steps) >= 850 and max(steps) <= 999
    assert max(steps) - min(steps) > 75  # spread over the range, not one step


def test_ranged_degrade_leaves_the_first_steps_clean():
    from bench.pretrain_variant import ranged_degrade

    current = {}
    degrade = ranged_degrade(0, 1000, current, first=2)
    pixels = torch.rand(4, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        assert degrade(pixels, 1.0, generator) is pixels and current["rows"] == []
    assert not torch.equal(degrade(pixels, 1.0, generator), pixels)  # the third step is degraded
    assert current["rows"] == [0, 1, 2, 3]


# two questions per cell: present typical, present atypical, absent typical, absent atypical
_RELIANCE = (
    [3.0, 1.0, 2.0, 0.0, 1.0, -1.0, 0.0, -2.0],
    ["yes", "yes", "yes", "yes", "no", "no", "no", "no"],
    [True, True, False, False, True, True, False, False],
)


def test_reliance_against_hand_counted_pairs():
    from bench.prior_reliance import reliance

    out = reliance(*_RELIANCE)
    # evidence, typical: (3, 1) vs (1, -1): 3 wins, 1 tie of 4 pairs -> 0.875; atypical the same
    assert out["evidence_auc"] == {"typical": 0.875, "atypical": 0.875, "mean": 0.875}
    # prior, present: (3, 1) vs (2, 0): 3 of 4 pairs; absent: (1, -1) vs (0, -2): 3 of 4
    assert out["prior_auc"] == {"present": 0.75, "absent": 0.75, "mean": 0.75}
    assert out["yes_share"] == {
        "present_typical": 1.0,
        "present_atypical": 0.5,
        "absent_typical": 0.5,
        "absent_atypical": 0.0,
    }
    assert set(out["n"].values()) == {2}


def test_within_image_auc_compares_only_questions_about_the_same_image():
    from bench.prior_reliance import within_image_auc

    # image a: present 2 vs absent 1 and 2 -> 1 win + 1 tie of 2; image b: present 0 vs absent 5 -> 0 of 1
    margins, labels = [2.0, 1.0, 2.0, 0.0, 5.0], ["yes", "no", "no", "yes", "no"]
    images = ["a", "a", "a", "b", "b"]
    assert within_image_auc(margins, labels, images) == round(1.5 / 3, 4)
    assert within_image_auc(margins, labels, ["a", "b", "c", "d", "e"]) is None  # no image has both
    # an image-level offset cancels within an image
    offset = [m + (10.0 if i == "b" else 0.0) for m, i in zip(margins, images, strict=True)]
    assert within_image_auc(offset, labels, images) == within_image_auc(margins, labels, images)


def test_reliance_tells_a_yes_shift_from_a_removed_prior():
    from bench.prior_reliance import reliance

    margins, labels, typical = _RELIANCE
    shifted = reliance([m - 1 for m in margins], labels, typical)  # every answer toward "no"
    assert shifted["evidence_auc"] == reliance(*_RELIANCE)["evidence_auc"]
    assert shifted["prior_auc"]["mean"] == 0.75
    assert shifted["yes_share"]["present_typical"] == 0.5
    unbiased = reliance([m - t for m, t in zip(margins, typical, strict=True)], labels, typical)
    assert unbiased["prior_auc"] == {"present": 0.5, "absent": 0.5, "mean": 0.5}
    assert unbiased["evidence_auc"]["mean"] == 0.875
    with pytest.raises(ValueError, match="no question in cell absent_atypical"):
        reliance(margins[:6], labels[:6], typical[:6])


def test_oracle_shift_finds_the_offset_that_removes_the_prior():
    from bench.prior_reliance import oracle_shift, reliance

    margins, labels, typical = _RELIANCE
    k, shifted = oracle_shift(margins, typical, labels)
    assert k == pytest.approx(1.0)  # typical objects sit exactly 1 above atypical ones here
    assert reliance(shifted, labels, typical)["prior_auc"]["mean"] == 0.5
    assert sum(shifted) == pytest.approx(sum(margins))  # the mean margin stays
    flipped = [m - 2 * t for m, t in zip(margins, typical, strict=True)]  # typical 1 *below* atypical
    k, shifted = oracle_shift(flipped, typical, labels)
    assert k == pytest.approx(-1.0)
    assert reliance(shifted, labels, typical)["prior_auc"]["mean"] == 0.5


def test_oracle_frontier_trades_counterfactual_for_random_f1():
    from bench.prior_reliance import oracle_frontier

    margins, labels, typical = _RELIANCE
    # random: the prior-consistent questions (present typical, absent atypical); counterfactual: the rest
    splits = {"random": [0, 1, 6, 7], "counterfactual": [2, 3, 4, 5]}
    # 5% of the way already turns the absent atypical 0.0 into "yes": random F1 1.0 -> 0.8, and the
    # present atypical 0.0 into "yes": CF F1 0.5 -> 0.8; nothing further changes up to the full offset
    strict = oracle_frontier(margins, typical, labels, 1.0, splits, tolerance=0.01)
    assert (strict["fraction"], strict["gain"], strict["cost"]) == (0.0, 0.0, 0.0)
    loose = oracle_frontier(margins, typical, labels, 1.0, splits, tolerance=0.25)
    assert (loose["fraction"], loose["gain"], loose["cost"]) == (0.05, 0.3, -0.2)
    assert len(loose["curve"]) == 21 and loose["curve"][-1] == [1.0, 0.3, -0.2]


def test_target_margins_follow_purify_on_two_tokens():
    from bench.prior_reliance import target_margins

    # fixed strength 3: 4 * 0.5 - 3 * 1.0; beyond ln(10) the minority answer leaves the plausible set
    assert target_margins([0.5, 3.0, -3.0], [1.0, 0.0, 0.0], 3.0, False, 0.1) == [-1.0, math.inf, -math.inf]
    a = 3 * (1 - 1 / (1 + math.exp(-0.5)))  # adaptive: 3 (1 - max(p, 1 - p))
    assert target_margins([0.5], [1.0], 3.0, True, 0.1)[0] == pytest.approx((1 + a) * 0.5 - a)
    assert target_margins([3.0], [0.0], 1.0, False, 0.0) == [6.0]  # no cut-off


def test_split_scores_of_greedy_answers():
    from bench.prior_reliance import split_scores

    margins, labels, _ = _RELIANCE
    out = split_scores(margins, labels, {"a": [0, 2, 4, 6], "b": [1, 3, 5, 7]})
    # a: margins 3, 2 (yes) and 1, 0 (no): answers yes, yes, yes, no -> tp 2, fp 1, fn 0
    assert out["a"] == {"f1": 0.8, "yes_ratio": 0.75, "auc": 1.0}
    # b: 1, 0 (yes) and -1, -2 (no): yes, no, no, no -> tp 1, fn 1
    assert out["b"] == {"f1": pytest.approx(0.6667, abs=1e-4), "yes_ratio": 0.25, "auc": 1.0}


def _probe_report(path: Path, lm: float, contrast: float, data: str = "/w", step: int = 900) -> Path:
    import json

    report = {
        "tower_auc_adversarial": 0.8,
        "lm_auc_counterfactual": lm,
        "noised_object_auc": 0.6,
        "noised_lm_auc_counterfactual": 0.4,
        "contrast_auc_counterfactual": contrast,
        "settings": {"data": data, "noise_step": step},
    }
    path.write_text(json.dumps(report))
    return path


def test_probe_table_gives_mean_and_sample_sd_per_recipe(tmp_path, capsys):
    from bench.probe_table import main

    a = _probe_report(tmp_path / "a.json", lm=0.5, contrast=0.7)
    b = _probe_report(tmp_path / "b.json", lm=0.7, contrast=0.8)
    c = _probe_report(tmp_path / "c.json", lm=0.6, contrast=0.65)
    assert main([f"two={a},{b}", f"one={c}"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    # two runs: LM mean 0.6, sd sqrt(0.02) = 0.1414; contrast 0.75 ± 0.0707; contrast - LM 0.2 and 0.1
    assert rows[2].split(" | ")[:3] == ["| two", "2", "0.800 ± 0.000"]
    assert "0.600 ± 0.141" in rows[2] and "0.750 ± 0.071" in rows[2] and rows[2].endswith("0.150 ± 0.071 |")
    assert rows[3].startswith("| one | 1 | 0.800 |") and rows[3].endswith("| 0.050 |")


def test_probe_table_refuses_reports_from_another_world_naming_the_file(tmp_path):
    from bench.probe_table import main

    a = _probe_report(tmp_path / "a.json", lm=0.5, contrast=0.7)
    b = _probe_report(tmp_path / "b.json", lm=0.5, contrast=0.7, step=700)
    with pytest.raises(SystemExit, match=r"b\.json: settings \(data, noise_step\)"):
        main([f"x={a}", f"y={b}"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"bad\.json: not a probe report"):
        main([f"x={tmp_path / 'bad.json'}"])
    with pytest.raises(SystemExit, match="expected NAME=FILE"):
        main(["nofiles"])


def test_prior_reliance_pools_a_worlds_questions_and_scores_a_model(tmp_path):
    import json

    from bench.prior_reliance import main, world_questions
    from seed.base.tiny import save_tiny
    from seed.eval.pope import load_pope_questions
    from seed.world.config import WorldConfig
    from seed.world.synth import synthesize

    data = tmp_path / "world"
    config = WorldConfig(n_train=4, n_seed=1, n_pope_images=6, n_mme_images=1, n_chair_images=1)
    synthesize(data, config, False)
    questions, splits, visibility = world_questions(data)
    assert len({(q["image"], q["text"]) for q in questions}) == len(questions)  # each once
    for split, idx in splits.items():
        asked = load_pope_questions(data / "pope" / f"world_pope_{split}.json")
        assert [(q["image"], q["text"], q["label"]) for q in asked] == [
            (questions[i]["image"], questions[i]["text"], questions[i]["label"]) for i in idx
        ]
    # the counterfactual split's design: present objects atypical for the scene, absent ones typical
    assert all(questions[i]["typical"] == (questions[i]["label"] == "no") for i in splits["counterfactual"])
    assert visibility["typical"]["present"] + visibility["atypical"]["present"] == sum(
        q["label"] == "yes" for q in questions
    )
    model = save_tiny("llava", tmp_path / "model")
    out = tmp_path / "reliance.json"
    argv = [
        "--model",
        str(model),
        "--data",
        str(data),
        "--noise-step",
        "900",
        "--alpha",
        "3",
        "--out",
        str(out),
        "--empty-scene",
    ]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {"clean", "contrast a=3", "target a=3 adaptive beta=0.1"} <= set(rows)
    empty = {
        "empty scene view alone",
        "noised view alone",
        "contrast a=3 with the empty scene",
        "target a=3 adaptive beta=0.1 with the empty scene",
    }
    assert empty <= set(rows) and rows["empty scene view alone"]["n"] == rows["clean"]["n"]
    assert all(0 <= row["evidence_within_image"] <= 1 for row in rows.values())
    # the empty scene is another image: its view differs from the clean one's and the noised one's
    views = ("clean", "noised view alone", "empty scene view alone")
    assert len({json.dumps(rows[v]["evidence_auc"]) + json.dumps(rows[v]["yes_share"]) for v in views}) == 3
    assert rows["clean"]["splits"].keys() == splits.keys()
    oracle = next(v for k, v in rows.items() if k.startswith("oracle"))
    assert abs(oracle["prior_auc"]["mean"] - 0.5) <= abs(rows["clean"]["prior_auc"]["mean"] - 0.5)


def test_seed_select_row_names_show_every_setting():
    from bench.seed_select import GRIDS, balance_of, contrast_of, draws_of, row_name

    assert row_name(("all", 12, 900, 3.0, True, 1, 5200)) == "all-12/900/3/adaptive/1/5200"
    assert row_name(("all", 12, 900, 3.0, False, 2, 0, "split")) == "all-12/900/3/fixed/2/all/centred-split"
    assert (
        row_name(("all", 12, 900, 3.0, True, 1, 5200, "image", 0.5))
        == "all-12/900/3/adaptive/1/5200/centredx0.5"
    )
    row = ("all", 12, 900, 3.0, True, 1, 5200, "split", 1.0, 4)
    assert row_name(row) == "all-12/900/3/adaptive/1/5200/centred-split/draws4" and draws_of(row) == 4
    oracle = ("all", 12, 900, 3.0, True, 1, 5200, "rate", 1.0, 1, "answer", "oracle")
    assert row_name(oracle) == "all-12/900/3/adaptive/1/5200/centred-rate/balanced/oracle"
    assert contrast_of(oracle) == "oracle" and contrast_of(row) == "noised"
    assert draws_of(("all", 12, 900, 3.0, True, 1, 5200)) == 1
    row = ("all", 12, 900, 3.0, True, 1, 5200, "split", 1.0, 1, "answer")
    assert (
        row_name(row) == "all-12/900/3/adaptive/1/5200/centred-split/balanced" and balance_of(row) == "answer"
    )
    assert balance_of(("all", 12, 900, 3.0, True, 1, 5200)) == "none"
    assert (
        row_name(("all", 12, 900, 3.0, True, 1, 5200, "rate")) == "all-12/900/3/adaptive/1/5200/centred-rate"
    )
    for grid in GRIDS.values():  # a grid's rows are told apart by their names (results are keyed by them)
        assert len({row_name(r) for r in grid}) == len(grid)


def test_existence_turns_keep_only_pope_style_existence_answers():
    from bench.train_existence import existence_turns

    suffix = "\nAnswer the question using a single word or phrase."
    rows = [
        {
            "image": "a.png",
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe the image briefly."},
                {"from": "gpt", "value": "A desk."},
                {"from": "human", "value": "Is there a lamp in the image?" + suffix},
                {"from": "gpt", "value": "No"},
                {"from": "human", "value": "Is the laptop gray in this image? Please answer yes or no."},
                {"from": "gpt", "value": "Yes"},
                {"from": "human", "value": "Is there an apple in the image?" + suffix},
                {"from": "gpt", "value": "Yes"},
                {"from": "human", "value": "Is there a cup in the image? Please answer yes or no."},
                {"from": "gpt", "value": "No"},
            ],
        }
    ]
    assert existence_turns(rows) == [
        ("a.png", "Is there a lamp in the image?" + suffix, "no"),
        ("a.png", "Is there an apple in the image?" + suffix, "yes"),
    ]


def tiny_llava_shape():
    from seed.base.modeling import ModelConfig

    return ModelConfig(
        image_size=16, patch_size=8, vision_hidden=16, vision_layers=1, vision_heads=2,
        text_hidden=16, text_layers=1, text_heads=2, text_intermediate=32,
    )  # fmt: skip


def test_warm_start_copies_tower_projector_and_embeddings_only():
    from bench.pretrain_variant import warm_start
    from seed.base.modeling import build_model, build_tokenizer

    shape = tiny_llava_shape()
    tokenizer = build_tokenizer(["Is there a lamp in the image?", "Yes", "No"])
    target, source = build_model(shape, tokenizer, seed=0), build_model(shape, tokenizer, seed=1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    warm_start(target, source)
    after, theirs = target.state_dict(), source.state_dict()
    copied = ("vision_tower", "multi_modal_projector", "embed_tokens")
    for key, value in after.items():
        if any(part in key for part in copied):
            assert torch.equal(value, theirs[key]), key
        else:
            assert torch.equal(value, before[key]), key
    assert any(not torch.equal(before[k], theirs[k]) for k in after if "vision_tower" in k)


def test_warm_start_matches_embedding_rows_by_token_across_vocabularies():
    from bench.pretrain_variant import warm_start
    from seed.base.modeling import build_model, build_tokenizer

    shape = tiny_llava_shape()
    theirs_tok = build_tokenizer(["Is there a lamp in the image?", "Yes", "No"])
    ours_tok = build_tokenizer(["Is there a fork in the image?", "Yes", "No"])
    target, source = build_model(shape, ours_tok, seed=0), build_model(shape, theirs_tok, seed=1)
    before = target.get_input_embeddings().weight.detach().clone()
    ours, theirs = ours_tok.get_vocab(), theirs_tok.get_vocab()
    copied = warm_start(target, source, ours, theirs)
    shared = set(ours) & set(theirs)
    assert copied == len(shared) and "fork" in ours and "fork" not in theirs and "Yes" in shared
    after, src = target.get_input_embeddings().weight, source.get_input_embeddings().weight
    for token, row in ours.items():
        expected = src[theirs[token]] if token in shared else before[row]
        assert torch.equal(after[row], expected), token
