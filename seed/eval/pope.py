"""POPE (Li et al. 2023): yes/no object-existence questions, scored with the official rule.

A POPE split is JSONL, one question a line:
``{"question_id": 1, "image": "eval_000012.png", "text": "Is there a fork in the image?", "label": "yes"}``.
Answers are JSONL too, ``{"question_id": 1, "text": "<what the model said>"}``. Every answer is
turned into yes/no by `parse_yes_no` (the official POPE rule) and scored with yes as the positive
class: accuracy, precision, recall, F1 and the yes-ratio (the share of *predicted* yes).

Reading errors raise `DataError` naming the file, the 1-based line number (as `row`) and the field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from seed.errors import DataError, SeedError
from seed.eval.bootstrap import bootstrap_ci
from seed.files.inputs import check_prompt, check_relative_name

# The official POPE splits (COCO, A-OKVQA, GQA each ship these three) and the project's counterfactual
# split: present objects atypical for the scene, absent ones typical for it (docs/world.md).
POPE_SAMPLED_SPLITS = ("random", "popular", "adversarial")
POPE_SPLITS = (*POPE_SAMPLED_SPLITS, "counterfactual")
POPE_PROMPT_SUFFIX = "\nAnswer the question using a single word or phrase."
POPE_LABELS = ("yes", "no")
POPE_METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "yes_ratio")

QuestionId = int | str


def build_pope_prompt(text: str) -> str:
    """The text the model is asked: the POPE question followed by `POPE_PROMPT_SUFFIX`.

    This is LLaVA-1.5's short-answer prompt. The image placeholder is not part of it; the chat
    template adds that. A question that already ends with the suffix (LLaVA's own POPE files carry
    it) is returned unchanged, so the suffix never appears twice.
    """
    if text.endswith(POPE_PROMPT_SUFFIX):
        return text
    return text + POPE_PROMPT_SUFFIX


def parse_yes_no(answer: str) -> str:
    """Map a free-form answer to "yes" or "no" with the official POPE rule.

    The rule of POPE's own evaluation script: keep the text before the first '.', drop every ',',
    split on single spaces; the answer is "no" if those words contain "No", "no" or "not", and "yes"
    otherwise. An empty answer (or one that says nothing recognisable) is therefore "yes". Matching
    is on whole words and case-sensitive beyond those three forms: "NO" and "Nope" count as "yes".

    Toolkits differ, which moves reported numbers: lmms-eval accepts only an exact "yes"/"no"
    (after lowercasing) and reports the yes-ratio of the labels, while VCD's script tests for the
    substrings "no"/"not" anywhere in the answer. We follow the official rule above.

    Examples: "Yes." -> "yes"; "No, there is not." -> "no"; "There is no dog in the image" -> "no";
    "" -> "yes"; "I am not sure" -> "no"; "yes, not really" -> "no".
    """
    first_sentence = answer.split(".", 1)[0]
    words = first_sentence.replace(",", "").split(" ")
    if "No" in words or "no" in words or "not" in words:
        return "no"
    return "yes"


def read_jsonl_objects(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """Read a JSONL file into (line number, object) pairs, 1-based; blank lines are skipped.

    Raises `DataError` when the file cannot be read, is not UTF-8, holds a line that is not a JSON
    object, or holds no records at all.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, f"not UTF-8 text (byte {exc.start})", row=line) from exc
    records: list[tuple[int, dict[str, Any]]] = []
    for line_no, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise DataError(
                path, f"line is not valid JSON ({exc}); expected one JSON object per line", row=line_no
            ) from exc
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object per line, got {type(obj).__name__}", row=line_no)
        records.append((line_no, obj))
    if not records:
        raise DataError(path, "file holds no records (expected JSONL, one object per line)")
    return records


def _field(path: Path, line_no: int, obj: dict[str, Any], key: str, kinds: tuple[type, ...]) -> Any:
    """Return obj[key], raising DataError if it is missing or of the wrong JSON type."""
    if key not in obj:
        raise DataError(path, f"missing key '{key}'", field=key, row=line_no)
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = " or ".join("integer" if k is int else "string" for k in kinds)
        raise DataError(path, f"expected {expected}, got {json.dumps(value)[:60]}", field=key, row=line_no)
    return value


def _check_unique(path: Path, seen: dict[QuestionId, int], question_id: QuestionId, line_no: int) -> None:
    if question_id in seen:
        raise DataError(
            path,
            f"duplicate question_id {question_id!r} (first on line {seen[question_id]})",
            field="question_id",
            row=line_no,
        )
    seen[question_id] = line_no


def load_pope_questions(path: str | Path) -> list[dict[str, Any]]:
    """Read an official POPE JSONL split: a list of {question_id, image, text, label} in file order.

    `question_id` is an integer or a string and unique; `image` a non-empty relative file name (no
    ``..``, not absolute); `text` the question (non-empty, at most `seed.files.inputs.MAX_PROMPT_CHARS` characters);
    `label` exactly "yes" or "no". Extra keys are kept. Raises `DataError` (file, line as `row`,
    field) on a malformed line, a missing key, a wrong type, a label such as "maybe", or a duplicate
    question_id.
    """
    path = Path(path)
    seen: dict[QuestionId, int] = {}
    questions: list[dict[str, Any]] = []
    for line_no, obj in read_jsonl_objects(path):
        question_id = _field(path, line_no, obj, "question_id", (int, str))
        image = _field(path, line_no, obj, "image", (str,))
        text = _field(path, line_no, obj, "text", (str,))
        label = _field(path, line_no, obj, "label", (str,))
        if not image:
            raise DataError(path, "image file name is empty", field="image", row=line_no)
        check_relative_name(image, path, "image", line_no)
        check_prompt(text, path, "text", line_no)
        if label not in POPE_LABELS:
            raise DataError(path, f"label must be 'yes' or 'no', got {label!r}", field="label", row=line_no)
        _check_unique(path, seen, question_id, line_no)
        questions.append(obj)
    return questions


def _read_answers(path: Path) -> dict[QuestionId, tuple[int, str]]:
    """question_id -> (line number, answer text), validated like `load_answers`."""
    seen: dict[QuestionId, int] = {}
    answers: dict[QuestionId, tuple[int, str]] = {}
    for line_no, obj in read_jsonl_objects(path):
        question_id = _field(path, line_no, obj, "question_id", (int, str))
        text = _field(path, line_no, obj, "text", (str,))
        _check_unique(path, seen, question_id, line_no)
        answers[question_id] = (line_no, text)
    return answers


def load_answers(path: str | Path) -> dict[QuestionId, str]:
    """Read model answers, JSONL lines {"question_id", "text", ...}, into question_id -> text.

    Raises `DataError` (file, line as `row`, field) on a malformed line, a missing or mistyped
    question_id or text, or a duplicate question_id.
    """
    return {qid: text for qid, (_, text) in _read_answers(Path(path)).items()}


def _check_binary(name: str, values: list[str]) -> None:
    bad = sorted({v for v in values if v not in POPE_LABELS}, key=repr)
    if bad:
        raise ValueError(f"{name} must be 'yes' or 'no', got {bad[:5]}")


def ranking_auc(scores: Any, positive: Any) -> float:
    """Probability that a present object's score beats an absent one's (ties count half).

    scores: (n,) tensor, e.g. yes-minus-no logits; positive: (n,) bool tensor, True where the object
    is present. A diagnostic of how well a score separates the labels, not a POPE metric.
    """
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None]).float().mean() + 0.5 * (pos[:, None] == neg[None]).float().mean()
    return float(wins)


def margin_auc(labels: list[str], margins: list[float]) -> float | None:
    """The AUC of the yes-minus-no margin: how often a "yes" question outscores a "no" one.

    labels: "yes"/"no" per question; margins: the first answer token's yes-minus-no logit per
    question. 1.0 separates perfectly, 0.5 is chance, below 0.5 the margin points the wrong way
    (the prior outvotes the image). None when either label is missing.
    """
    if len(labels) != len(margins):
        raise ValueError(f"{len(labels)} labels but {len(margins)} margins")
    _check_binary("labels", labels)
    positive = np.asarray(labels) == "yes"
    if positive.all() or not positive.any():
        return None
    scores = np.asarray(margins, dtype=np.float64)
    pos, neg = scores[positive], scores[~positive]
    # rank form of the Mann-Whitney statistic (ties share their mean rank): O(n log n) memory-light
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    values = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(values))
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and values[stop + 1] == values[start]:
            stop += 1
        ranks[start : stop + 1] = (start + stop) / 2 + 1
        start = stop + 1
    rank_of = np.empty(len(values))
    rank_of[order] = ranks
    wins = rank_of[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(wins / (len(pos) * len(neg)))


def confusion_counts(labels: list[str], predictions: list[str]) -> dict[str, int]:
    """Confusion matrix with yes as positive: {"tp", "fp", "tn", "fn"}.

    `labels` and `predictions` are equally long lists of "yes"/"no" (ValueError otherwise).
    """
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    _check_binary("labels", labels)
    _check_binary("predictions", predictions)
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for label, prediction in zip(labels, predictions, strict=True):
        key = ("t" if label == prediction else "f") + ("p" if prediction == "yes" else "n")
        counts[key] += 1
    return counts


def pope_metrics(labels: list[str], predictions: list[str]) -> dict[str, float]:
    """POPE metrics with yes as positive, each a fraction in [0, 1].

    accuracy = (tp + tn) / N; precision = tp / (tp + fp); recall = tp / (tp + fn);
    f1 = 2 * precision * recall / (precision + recall); yes_ratio = (tp + fp) / N, the share of
    predicted yes (not of labelled yes, as lmms-eval reports it).

    Empty cases are defined, never NaN: precision is 0.0 when nothing is predicted yes, recall is
    0.0 when no label is yes, and f1 is 0.0 when precision + recall is 0. An empty input, unequal
    lengths or a value other than "yes"/"no" raise ValueError.
    """
    counts = confusion_counts(labels, predictions)
    n = len(labels)
    if n == 0:
        raise ValueError("POPE metrics need at least one question")
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": (tp + fp) / n,
    }


def f1_bootstrap_ci(
    labels: list[str],
    predictions: list[str],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval (lo, hi) of the POPE F1, resampling questions with replacement.

    Each resample's F1 is computed as in `pope_metrics` (2 tp / (2 tp + fp + fn), 0.0 when tp is 0),
    so the interval is on the same [0, 1] scale. Deterministic for a given `seed`.
    """
    confusion_counts(labels, predictions)  # validates lengths and values
    if not labels:
        raise ValueError("bootstrap needs at least one question")
    truth = np.asarray(labels) == "yes"
    said_yes = np.asarray(predictions) == "yes"

    def f1_per_resample(indices: np.ndarray) -> np.ndarray:  # (n_resamples, n) -> (n_resamples,)
        t, p = truth[indices], said_yes[indices]
        tp = np.sum(t & p, axis=1)
        wrong = np.sum(t != p, axis=1)  # fp + fn
        denominator = 2 * tp + wrong
        return np.where(tp > 0, 2 * tp / np.maximum(denominator, 1), 0.0)

    return bootstrap_ci(f1_per_resample, len(labels), n_resamples=n_resamples, seed=seed, level=level)


def match_answers(
    questions: list[dict[str, Any]],
    answers: dict[QuestionId, str],
    questions_path: str | Path = "<questions>",
    answers_path: str | Path = "<answers>",
) -> tuple[list[str], list[str]]:
    """Pair each question with its answer by question_id: (labels, parsed predictions), question order.

    Every question needs exactly one answer and every answer a question; otherwise `DataError`
    names the answers file and the first few question_ids at fault.
    """
    known = {q["question_id"] for q in questions}
    missing = [q["question_id"] for q in questions if q["question_id"] not in answers]
    if missing:
        shown = ", ".join(repr(qid) for qid in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            answers_path,
            f"{len(missing)} question(s) of {questions_path} have no answer: question_id {shown}",
            field="question_id",
        )
    extra = [qid for qid in answers if qid not in known]
    if extra:
        shown = ", ".join(repr(qid) for qid in extra[:5]) + (" ..." if len(extra) > 5 else "")
        raise DataError(
            answers_path,
            f"{len(extra)} answer(s) for question_ids not in {questions_path}: {shown}",
            field="question_id",
        )
    labels = [q["label"] for q in questions]
    predictions = [parse_yes_no(answers[q["question_id"]]) for q in questions]
    return labels, predictions


def pope_score(questions_path: str | Path, answers_path: str | Path) -> dict[str, float]:
    """Score an answers file against a POPE split: the `pope_metrics` dict.

    Answers are matched by question_id; a question without an answer, or an answer without a
    question, is a `DataError`.
    """
    questions = load_pope_questions(questions_path)
    answers = load_answers(answers_path)
    labels, predictions = match_answers(questions, answers, questions_path, answers_path)
    return pope_metrics(labels, predictions)


def main_pope_score(argv: list[str] | None = None) -> int:
    """`seed pope-score --questions Q --answers A`: print the POPE metrics as one JSON object."""
    parser = argparse.ArgumentParser(
        prog="seed pope-score",
        description=(
            "Score model answers on a POPE split. Answers are parsed with the official POPE rule "
            "(text before the first '.', commas dropped; 'no' if a word is No/no/not, else 'yes') "
            "and scored with yes as positive. Prints one JSON object with accuracy, precision, "
            "recall, f1 and yes_ratio (predicted yes / N), each a fraction in [0, 1]."
        ),
    )
    parser.add_argument(
        "--questions",
        required=True,
        type=Path,
        help='POPE split, JSONL lines {"question_id", "image", "text", "label": "yes"|"no"}',
    )
    parser.add_argument(
        "--answers",
        required=True,
        type=Path,
        help='model answers, JSONL lines {"question_id", "text"}; exactly one per question',
    )
    args = parser.parse_args(argv)
    try:
        metrics = pope_score(args.questions, args.answers)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({key: metrics[key] for key in POPE_METRIC_KEYS}))
    return 0
