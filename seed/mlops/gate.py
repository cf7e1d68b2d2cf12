"""The promotion gate: whether a new adapter version may become the champion (pure, no MLflow).

`promotion_decision` compares three score sets (candidate, current champion, base model), each
``{"pope": {split: F1}, "mme": {subtask: score}}`` as `method_scores` reads them from a metrics.json.
`seed.mlops.registry.promote` applies it to registered versions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from seed.errors import ConfigError
from seed.eval.mme import MME_SUBTASKS
from seed.eval.pope import POPE_SAMPLED_SPLITS, POPE_SPLITS
from seed.params import check_range

SECTION = "promote"
MME_MAX = 200.0  # an MME subtask scores 100 * acc + 100 * acc+
EPS = 1e-9  # float slack: a drop of exactly `tolerance` is allowed, a gain of exactly `margin` is not


@dataclass
class PromoteConfig:
    """Settings of the promotion gate (params.yaml section ``promote``).

    metric: the POPE split whose F1 is the primary metric (``adversarial``, or ``counterfactual``
    where the data has that split). margin: the primary-metric F1 gain over the current champion
    (or, for the first version, over the base model) that a new version must exceed. tolerance: the
    largest drop allowed on any POPE split's F1 and on any MME subtask, both on a 0-1 scale (an MME
    subtask's score / 200).
    """

    margin: float = 0.005
    tolerance: float = 0.02
    metric: str = "adversarial"

    def __post_init__(self) -> None:
        if self.metric not in POPE_SPLITS:
            raise ConfigError(
                f"{SECTION}.metric = {self.metric!r} is not a POPE split; choose from {POPE_SPLITS}"
            )
        check_range(SECTION, "margin", self.margin, lo=0, hi=1)
        check_range(SECTION, "tolerance", self.tolerance, lo=0, hi=1)


def method_scores(metrics: dict | None, method: str) -> dict[str, dict[str, float]]:
    """``{"pope": {split: f1}, "mme": {subtask: score}}`` of one method of a metrics.json."""
    metrics = metrics or {}
    pope = (metrics.get("pope") or {}).get(method) or {}
    mme = (metrics.get("mme") or {}).get(method) or {}
    return {
        "pope": {s: pope[s]["f1"] for s in POPE_SPLITS if isinstance(pope.get(s), dict) and "f1" in pope[s]},
        "mme": {t: mme[t] for t in MME_SUBTASKS if t in mme},
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def missing_scores(scores: dict | None, metric: str = "adversarial") -> list[str]:
    """The score keys (``pope.<split>``, ``mme.<subtask>``) that are absent or not a finite number.

    Required: the three official POPE splits, the primary ``metric`` split and every MME subtask.
    """
    scores = scores or {}
    pope, mme = scores.get("pope") or {}, scores.get("mme") or {}
    required = dict.fromkeys((*POPE_SAMPLED_SPLITS, metric))
    return [f"pope.{s}" for s in required if _number(pope.get(s)) is None] + [
        f"mme.{t}" for t in MME_SUBTASKS if _number(mme.get(t)) is None
    ]


def regressions(candidate: dict, reference: dict, tolerance: float) -> list[str]:
    """A line per POPE split or MME subtask where ``candidate`` drops more than ``tolerance`` (0-1 scale)."""
    found = []
    for split in POPE_SPLITS:
        if _number(candidate["pope"].get(split)) is None or _number(reference["pope"].get(split)) is None:
            continue  # a split that one of them lacks (real POPE has no counterfactual split)
        new, old = candidate["pope"][split], reference["pope"][split]
        if old - new > tolerance + EPS:
            found.append(f"POPE {split} F1 {new:.4f} < {old:.4f}")
    for task in MME_SUBTASKS:
        new, old = candidate["mme"][task], reference["mme"][task]
        if (old - new) / MME_MAX > tolerance + EPS:
            found.append(f"MME {task} {new:.1f} < {old:.1f}")
    return found


def promotion_decision(
    candidate: dict | None,
    champion: dict | None,
    base: dict | None,
    margin: float,
    tolerance: float,
    metric: str = "adversarial",
) -> tuple[bool, str]:
    """Whether ``candidate`` should become champion, and why (one line).

    It must have complete scores, beat the reference's POPE ``metric`` split F1 by more than ``margin``,
    and drop no POPE split's F1 and no MME subtask (score / 200) by more than ``tolerance``. The
    reference is ``champion``, or ``base`` when there is no champion yet (or its scores are
    incomplete). Each argument is ``{"pope": {split: f1}, "mme": {subtask: score}}``.
    """
    missing = missing_scores(candidate, metric)
    if candidate is None or missing:
        return False, f"incomplete metrics (missing {', '.join(missing)}): never promoted"
    if champion is not None and not missing_scores(champion, metric):
        reference, label = champion, "champion"
    elif base is not None and not missing_scores(base, metric):
        reference = base
        label = "base model" if champion is None else "base model (the champion's scores are incomplete)"
    else:
        absent = ", ".join(missing_scores(base, metric))
        return False, f"no complete scores of the base model to compare with (missing {absent})"
    new, old = candidate["pope"][metric], reference["pope"][metric]
    gain = new - old
    reasons = []
    if gain <= margin + EPS:
        reasons.append(
            f"POPE {metric} F1 {new:.4f} does not beat the {label}'s {old:.4f} by more than "
            f"margin {margin:g} (gain {gain:+.4f})"
        )
    dropped = regressions(candidate, reference, tolerance)
    if dropped:
        reasons.append(f"regresses beyond tolerance {tolerance:g} against the {label}: {'; '.join(dropped)}")
    if reasons:
        return False, "; ".join(reasons)
    return True, (
        f"POPE {metric} F1 {new:.4f} beats the {label}'s {old:.4f} by {gain:+.4f} (> margin {margin:g}); "
        f"no POPE split or MME subtask drops more than tolerance {tolerance:g}"
    )
