"""Stage `evaluate`: POPE (three splits), the MME hallucination subset and CHAIR for one model.

Answers are written in the official formats (POPE answers JSONL with ``question_id`` and ``text``;
MME lines ``image<TAB>question<TAB>answer<TAB>prediction``; CHAIR captions JSONL) and scored with the
official rules in ``seed.eval``. The evaluation never adapts to the model: prompts and parsing are
fixed (see ``seed.eval.pope.build_pope_prompt``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from seed.errors import ConfigError
from seed.params import check_range

SECTION = "evaluate"
POPE_SPLITS = ("random", "popular", "adversarial")


@dataclass
class EvaluateConfig:
    """Settings of stage `evaluate` (params.yaml section ``evaluate``)."""

    protocol: str = "greedy"  # "greedy" or "sample" (temperature 1, top_p 1, one run per seed)
    sample_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    batch_size: int = 64
    max_new_tokens: int = 6  # yes/no questions
    caption_max_new_tokens: int = 48
    caption_prompt: str = "Describe the image briefly."
    bootstrap_resamples: int = 1000
    benchmarks: list[str] = field(default_factory=lambda: ["pope", "mme", "chair"])

    def __post_init__(self) -> None:
        if self.protocol not in ("greedy", "sample"):
            raise ConfigError(f"{SECTION}.protocol = {self.protocol!r} must be 'greedy' or 'sample'")
        check_range(SECTION, "batch_size", self.batch_size, lo=1)
        check_range(SECTION, "max_new_tokens", self.max_new_tokens, lo=1)
        check_range(SECTION, "caption_max_new_tokens", self.caption_max_new_tokens, lo=1)
        check_range(SECTION, "bootstrap_resamples", self.bootstrap_resamples, lo=0)
        unknown = set(self.benchmarks) - {"pope", "mme", "chair"}
        if unknown:
            raise ConfigError(
                f"{SECTION}.benchmarks: unknown {sorted(unknown)}; choose from pope, mme, chair"
            )
        if self.protocol == "sample" and not self.sample_seeds:
            raise ConfigError(f"{SECTION}.sample_seeds must list at least one seed for the sample protocol")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def pope_files(pope_dir: Path) -> dict[str, Path]:
    """split -> POPE file in ``pope_dir`` (``*_pope_<split>.json``, as the official files are named)."""
    found = {}
    for split in POPE_SPLITS:
        matches = sorted(pope_dir.glob(f"*_pope_{split}.json"))
        if matches:
            found[split] = matches[0]
    return found


def run_pope(
    model,
    processor,
    pope_dir: Path,
    images_dir: Path,
    answers_dir: Path,
    config: EvaluateConfig,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Answer and score every POPE split found in ``pope_dir``; returns {split: metrics + f1_ci}."""
    from seed.eval.pope import (
        build_pope_prompt,
        f1_bootstrap_ci,
        load_pope_questions,
        parse_yes_no,
        pope_metrics,
    )
    from seed.generate import answer_all

    results = {}
    for split, path in pope_files(pope_dir).items():
        questions = load_pope_questions(path)
        answers = answer_all(
            model,
            processor,
            [images_dir / q["image"] for q in questions],
            [build_pope_prompt(q["text"]) for q in questions],
            batch_size=config.batch_size,
            max_new_tokens=config.max_new_tokens,
            do_sample=config.protocol == "sample",
            seed=seed,
            desc=f"pope-{split}",
            progress=progress,
        )
        _write_jsonl(
            answers_dir / f"pope_{split}.jsonl",
            [{"question_id": q["question_id"], "text": a} for q, a in zip(questions, answers, strict=True)],
        )
        labels = [q["label"] for q in questions]
        preds = [parse_yes_no(a) for a in answers]
        metrics = pope_metrics(labels, preds)
        if config.bootstrap_resamples:
            metrics["f1_ci"] = list(f1_bootstrap_ci(labels, preds, n_resamples=config.bootstrap_resamples))
        metrics["n"] = len(questions)
        results[split] = metrics
    return results


def run_mme(
    model,
    processor,
    mme_dir: Path,
    answers_dir: Path,
    config: EvaluateConfig,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict, dict[str, list[dict]]]:
    """Answer and score the MME hallucination subset; returns (scores, rows with predictions)."""
    from seed.eval.mme import load_mme, mme_score
    from seed.generate import answer_all

    rows_by_subtask = load_mme(mme_dir)
    for name, rows in rows_by_subtask.items():
        preds = answer_all(
            model,
            processor,
            [Path(r["image"]) for r in rows],
            [r["question"] for r in rows],
            batch_size=config.batch_size,
            max_new_tokens=config.max_new_tokens,
            do_sample=config.protocol == "sample",
            seed=seed,
            desc=f"mme-{name}",
            progress=progress,
        )
        for row, pred in zip(rows, preds, strict=True):
            row["prediction"] = pred
        lines = [
            f"{Path(r['image']).name}\t{r['question']}\t{r['answer'].capitalize()}\t{r['prediction']}\n"
            for r in rows
        ]
        path = answers_dir / "mme" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines))
    scores = mme_score(rows_by_subtask)
    flat = {name: scores[name]["score"] for name in rows_by_subtask}
    flat["total"] = scores["total"]
    flat["detail"] = {name: {k: v for k, v in scores[name].items()} for name in rows_by_subtask}
    return flat, rows_by_subtask


def colour_accuracy_by_typicality(rows: list[dict], meta: dict) -> dict:
    """World diagnostic: accuracy on MME colour questions about typically vs atypically coloured objects."""
    from seed.eval.mme import parse_mme_answer

    right: dict[str, list[bool]] = {"typical": [], "atypical": []}
    for row in rows:
        info = meta.get(f"color/{Path(row['image']).name}")
        if info is None:
            continue
        kind = "atypical" if info.get("atypical") else "typical"
        right[kind].append(parse_mme_answer(row["prediction"]) == row["answer"].lower())
    return {k: (sum(v) / len(v) if v else None) for k, v in right.items()} | {
        f"n_{k}": len(v) for k, v in right.items()
    }


def run_chair(
    model,
    processor,
    data_dir: Path,
    answers_dir: Path,
    config: EvaluateConfig,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Caption the CHAIR image list and score CHAIR_s / CHAIR_i against the instance annotations."""
    from seed.eval.chair import chair_metrics, load_coco_instances, load_synonyms
    from seed.generate import answer_all

    listing = json.loads((data_dir / "chair" / "images.json").read_text())
    paths = [data_dir / "images" / "eval" / item["file_name"] for item in listing]
    captions = answer_all(
        model,
        processor,
        paths,
        [config.caption_prompt] * len(paths),
        batch_size=config.batch_size,
        max_new_tokens=config.caption_max_new_tokens,
        do_sample=config.protocol == "sample",
        seed=seed,
        desc="chair",
        progress=progress,
    )
    _write_jsonl(
        answers_dir / "chair_captions.jsonl",
        [{"image_id": item["image_id"], "caption": c} for item, c in zip(listing, captions, strict=True)],
    )
    gt = load_coco_instances(data_dir / "annotations.json")
    synonyms = load_synonyms(data_dir / "synonyms.txt")
    return chair_metrics(
        {item["image_id"]: c for item, c in zip(listing, captions, strict=True)}, gt, synonyms
    )


def evaluate_model(
    model,
    processor,
    data_dir: Path,
    answers_dir: Path,
    config: EvaluateConfig,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Every configured benchmark for one loaded model on a world folder; returns its metrics."""
    result: dict = {}
    start = time.perf_counter()
    if "pope" in config.benchmarks:
        result["pope"] = run_pope(
            model,
            processor,
            data_dir / "pope",
            data_dir / "images" / "eval",
            answers_dir,
            config,
            seed,
            progress,
        )
    if "mme" in config.benchmarks:
        result["mme"], rows = run_mme(model, processor, data_dir / "mme", answers_dir, config, seed, progress)
        meta_path = data_dir / "mme" / "meta.json"
        if meta_path.exists():
            result["colour_by_typicality"] = colour_accuracy_by_typicality(
                rows["color"], json.loads(meta_path.read_text())
            )
    if "chair" in config.benchmarks:
        result["chair"] = run_chair(model, processor, data_dir, answers_dir, config, seed, progress)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result
