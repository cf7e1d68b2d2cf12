"""MME hallucination subset (Fu et al. 2023): existence, count, position, color.

Each image carries two yes/no questions, one answered Yes and one No. Per subtask:
acc = share of questions answered right, acc+ = share of images with both answers right,
score = 100 * acc + 100 * acc+ (max 200); the four subtasks add up to at most 800.

Two release layouts are read (see docs/data-format.md): image files with a same-named ``.txt``
beside them (the COCO-based subtasks), or ``images/`` plus ``questions_answers_YN/``. Each ``.txt``
holds exactly two non-empty lines ``question<TAB>answer`` with answers Yes / No, one of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from seed.errors import DataError
from seed.files.inputs import check_prompt

MME_SUBTASKS = ("existence", "count", "position", "color")
MME_ANSWERS = ("yes", "no")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
QA_FOLDER = "questions_answers_YN"
IMAGE_FOLDER = "images"


def parse_mme_answer(text: str) -> str:
    """Map a model answer to "yes", "no" or "other" with the official MME rule.

    Lowercase and strip; an exact "yes" or "no" is taken as is; otherwise "yes" is looked for in
    the first 4 characters, then "no"; anything else is "other", which never matches a label and so
    always counts as wrong. Examples: "Yes" -> "yes"; "No, it is not." -> "no";
    "There is a dog." -> "other"; "" -> "other".
    """
    answer = text.lower().strip()
    if answer in MME_ANSWERS:
        return answer
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def _parse_qa_file(path: Path) -> list[tuple[str, str]]:
    """Read one question file: two (question, "yes"/"no") pairs, one yes and one no."""
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte {exc.start})") from exc
    pairs: list[tuple[str, str]] = []
    for line_no, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(path, "expected 'question<TAB>answer', found no tab", row=line_no)
        question, answer = line.rsplit("\t", 1)
        question, answer = question.strip(), answer.strip()
        if not question:
            raise DataError(path, "question is empty", field="question", row=line_no)
        check_prompt(question, path, "question", line_no)
        if answer.lower() not in MME_ANSWERS:
            raise DataError(path, f"answer must be Yes or No, got {answer!r}", field="answer", row=line_no)
        if len(pairs) == 2:
            raise DataError(path, "more than two questions; MME pairs exactly two per image", row=line_no)
        pairs.append((question, answer.lower()))
    if len(pairs) != 2:
        raise DataError(path, f"expected two question lines (one Yes, one No), found {len(pairs)}")
    if {answer for _, answer in pairs} != set(MME_ANSWERS):
        raise DataError(
            path, f"the two answers must be one Yes and one No, got both {pairs[0][1]!r}", field="answer"
        )
    return pairs


def _by_stem(paths: Iterable[Path], kind: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(paths):
        if path.stem in found:
            raise DataError(path, f"two {kind} files share the name '{path.stem}' (also {found[path.stem]})")
        found[path.stem] = path
    return found


def _pair_files(image_dir: Path, qa_dir: Path) -> list[tuple[Path, Path]]:
    """Match image files to question files by file stem; any unmatched file is a DataError."""
    files = [p for p in image_dir.iterdir() if p.is_file()]
    images = _by_stem((p for p in files if p.suffix.lower() in IMAGE_SUFFIXES), "image")
    texts = _by_stem((p for p in qa_dir.iterdir() if p.is_file() and p.suffix.lower() == ".txt"), "question")
    for stem, text_path in texts.items():
        if stem not in images:
            raise DataError(
                text_path, f"no image named '{stem}' with a suffix in {IMAGE_SUFFIXES} in {image_dir}"
            )
    for stem, image_path in images.items():
        if stem not in texts:
            raise DataError(image_path, f"image has no question file '{stem}.txt' in {qa_dir}")
    return [(images[stem], texts[stem]) for stem in sorted(images)]


def load_mme_subtask(folder: str | Path) -> list[dict[str, Any]]:
    """Read one MME subtask folder into rows {image, question, answer, pair_id}, two per image.

    `image` is the image's path (a string), `answer` the label lowercased ("yes"/"no"), `pair_id`
    the image's file stem, shared by its two questions. Rows are ordered by pair_id, then file order.
    Raises `DataError` naming the file (and line) for a missing folder, an image without a question
    file or the reverse, or a question file that is not exactly one Yes and one No line.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "MME subtask folder not found")
    if (folder / QA_FOLDER).is_dir():
        image_dir = folder / IMAGE_FOLDER
        if not image_dir.is_dir():
            raise DataError(image_dir, f"folder not found (expected beside {QA_FOLDER}/)")
        pairs = _pair_files(image_dir, folder / QA_FOLDER)
    else:
        pairs = _pair_files(folder, folder)
    if not pairs:
        raise DataError(folder, "no MME images with question files found")
    rows: list[dict[str, Any]] = []
    for image_path, text_path in pairs:
        for question, answer in _parse_qa_file(text_path):
            rows.append(
                {"image": str(image_path), "question": question, "answer": answer, "pair_id": image_path.stem}
            )
    return rows


def load_mme(root: str | Path, subtasks: Iterable[str] = MME_SUBTASKS) -> dict[str, list[dict[str, Any]]]:
    """Read the subtask folders `root/<subtask>` into subtask -> rows (see `load_mme_subtask`)."""
    root = Path(root)
    return {name: load_mme_subtask(root / name) for name in subtasks}


def mme_subtask_score(
    rows_with_predictions: list[dict[str, Any]], source: str = "<mme rows>"
) -> dict[str, float]:
    """Score one subtask: {acc, acc_plus, score, n_questions, n_images, n_other}.

    Each row needs "answer" ("yes"/"no", any case), "pair_id" and "prediction" (the model's raw
    text, parsed with `parse_mme_answer`). acc and acc_plus are fractions in [0, 1];
    score = 100 * acc + 100 * acc_plus, at most 200. n_other counts answers parsed as "other".
    Every pair_id must have exactly two rows; otherwise, or on an empty list or a missing key,
    `DataError` names `source`, the row index and the field.
    """
    if not rows_with_predictions:
        raise DataError(source, "no rows to score")
    right_by_image: dict[Any, list[bool]] = {}
    n_other = 0
    for index, row in enumerate(rows_with_predictions):
        if not isinstance(row, dict):
            raise DataError(source, f"row must be an object, got {type(row).__name__}", row=index)
        for key in ("answer", "pair_id", "prediction"):
            if key not in row:
                raise DataError(source, f"missing key '{key}'", field=key, row=index)
        if isinstance(row["pair_id"], list | dict):
            raise DataError(source, "must be a string or a number", field="pair_id", row=index)
        label = str(row["answer"]).lower()
        if label not in MME_ANSWERS:
            raise DataError(
                source, f"answer must be yes or no, got {row['answer']!r}", field="answer", row=index
            )
        if not isinstance(row["prediction"], str):
            raise DataError(source, "prediction must be a string", field="prediction", row=index)
        parsed = parse_mme_answer(row["prediction"])
        n_other += parsed == "other"
        right_by_image.setdefault(row["pair_id"], []).append(parsed == label)
    for pair_id, results in right_by_image.items():
        if len(results) != 2:
            raise DataError(
                source, f"pair_id {pair_id!r} has {len(results)} rows, expected 2", field="pair_id"
            )
    n_questions = len(rows_with_predictions)
    acc = sum(sum(results) for results in right_by_image.values()) / n_questions
    acc_plus = sum(all(results) for results in right_by_image.values()) / len(right_by_image)
    return {
        "acc": acc,
        "acc_plus": acc_plus,
        "score": 100.0 * acc + 100.0 * acc_plus,
        "n_questions": n_questions,
        "n_images": len(right_by_image),
        "n_other": n_other,
    }


def mme_score(rows_by_subtask: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Score the hallucination subset: {subtask: `mme_subtask_score`, ..., "total": sum of scores}.

    All four `MME_SUBTASKS` must be present (DataError otherwise); `total` is their
    score sum, at most 800. Further subtasks are scored too but left out of `total`.
    """
    missing = [name for name in MME_SUBTASKS if name not in rows_by_subtask]
    if missing:
        raise DataError("<mme predictions>", f"missing subtask(s) {', '.join(missing)}", field="subtask")
    result: dict[str, Any] = {
        name: mme_subtask_score(rows, source=f"<mme {name} predictions>")
        for name, rows in rows_by_subtask.items()
    }
    result["total"] = sum(result[name]["score"] for name in MME_SUBTASKS)
    return result
