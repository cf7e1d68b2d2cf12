"""seed.eval.report: the results table and the plots, from hand-made metrics."""

from __future__ import annotations

import json

import pytest

from seed.eval.report import adversarial_cost_points, results_table, write_plots


def _split(f1: float) -> dict:
    return {
        "accuracy": f1,
        "precision": f1,
        "recall": f1,
        "f1": f1,
        "yes_ratio": 0.5,
        "f1_ci": [f1 - 0.1, f1 + 0.05],
        "auc": f1 - 0.05,
    }


METRICS = {
    "protocol": "greedy",
    "pope": {
        "base": {"random": _split(0.8), "popular": _split(0.75), "adversarial": _split(0.7)},
        "vcd": {"random": _split(0.82), "popular": _split(0.78), "adversarial": _split(0.74)},
        "seed": {"random": _split(0.86), "popular": _split(0.81), "adversarial": _split(0.77)},
    },
    "mme": {
        m: {"existence": 180.0, "count": 100.0, "position": 90.0, "color": 120.0 + i, "total": 490.0 + i}
        for i, m in enumerate(("base", "vcd", "seed"))
    },
    "chair": {m: {"chair_s": 0.3, "chair_i": 0.1} for m in ("base", "vcd", "seed")},
    "cost": {
        "base": {"forwards_per_token": 1.0, "tokens_per_second": 500.0},
        "vcd": {"forwards_per_token": 2.0, "tokens_per_second": 260.0},
        "seed": {"forwards_per_token": 1.0, "tokens_per_second": 495.0},
    },
}


def test_results_table_rows_and_cells():
    table = results_table(METRICS).splitlines()
    assert table[0] == "protocol: greedy"
    assert table[1].startswith("| method | POPE rand F1 | POPE pop F1 | POPE adv F1 | MME total |")
    assert table[3] == "| base | 0.800 | 0.750 | 0.700 | 490.0 | 0.300 | 0.100 | 1.00 | 500.0 |"
    assert table[4].startswith("| vcd | 0.820 |") and table[4].endswith("| 2.00 | 260.0 |")
    assert table[5].startswith("| seed |")
    # the POPE detail table: F1, its interval, yes-ratio and AUC per split and method
    assert "| adversarial | seed | 0.770 | [0.670, 0.820] | 0.500 | 0.720 |" in table
    partial = results_table({"protocol": "greedy", "pope": {"base": {"random": _split(0.5)}}})
    assert "| base | 0.500 | - | - | - | - | - |" in partial
    with_cf = dict(METRICS, pope={"base": {"adversarial": _split(0.7), "counterfactual": _split(0.4)}})
    lines = results_table(with_cf).splitlines()
    assert "POPE CF F1" in lines[1] and "POPE rand F1" not in lines[1]
    assert "| counterfactual | base | 0.400 | [0.300, 0.450] | 0.500 | 0.350 |" in lines


def test_results_table_shows_std_under_sampling():
    sampled = {
        "protocol": "sample",
        "seeds": [0, 1, 2],
        "pope": {"base": {"random": {"f1": 0.8, "f1_std": 0.012}}},
        "mme": {"base": {"total": 500.0, "total_std": 3.25}},
    }
    table = results_table(sampled)
    assert "mean±std over seeds [0, 1, 2]" in table
    assert "0.800±0.012" in table and "500.0±3.2" in table


def test_adversarial_cost_points():
    points = adversarial_cost_points(METRICS)
    assert [(p["method"], p["forwards_per_token"], p["f1"]) for p in points] == [
        ("base", 1.0, 0.7),
        ("vcd", 2.0, 0.74),
        ("seed", 1.0, 0.77),
    ]
    assert points[0]["f1_low"] == pytest.approx(0.6) and points[0]["f1_high"] == pytest.approx(0.75)
    assert adversarial_cost_points({"pope": METRICS["pope"]}) == []  # no cost, no point


def test_write_plots_greedy_and_sample(tmp_path):
    written = write_plots(METRICS, tmp_path)
    assert [p.name for p in written] == ["pope_adv_vs_cost.png", "pope_f1.png", "mme_scores.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    records = json.loads((tmp_path / "plots" / "pope_f1.json").read_text())
    assert len(records) == 9 and {"method": "seed", "split": "adversarial", "f1": 0.77} in records
    sampled = dict(METRICS, protocol="sample")
    names = [p.name for p in write_plots(sampled, tmp_path)]
    assert names == ["pope_adv_vs_cost_sample.png", "pope_f1_sample.png", "mme_scores_sample.png"]
    assert write_plots({"protocol": "greedy"}, tmp_path / "empty") == []
