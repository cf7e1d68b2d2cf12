"""The benchmarks run on one loaded model with one decoding method: answers written, metrics returned.

Answers are written in the official formats (POPE answers JSONL with ``question_id`` and ``text``;
MME lines ``image<TAB>question<TAB>answer<TAB>prediction``; CHAIR captions JSONL) and scored with the
official rules of `seed.eval.pope`, `seed.eval.mme` and `seed.eval.chair`. Every method decodes the
same questions in the same batches through the same loop (`seed.model.generate.answer_all`), which
also counts its cost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from seed.errors import DataError
from seed.eval.benchmarks import (
    BenchmarkSettings,
    benchmark_paths,
    chair_image_list,
    chair_synonyms,
    load_instances,
    load_mme_meta,
    load_world_annotations,
    pope_files,
)
from seed.eval.pope import POPE_SPLITS
from seed.files.atomic import write_jsonl as _write_jsonl

if TYPE_CHECKING:
    from seed.model.vcd import DecodeStats, VCDSettings


class RunSettings(BenchmarkSettings, Protocol):
    """What a benchmark run reads of its settings (stage `evaluate`'s `EvaluateConfig` has them all)."""

    protocol: str
    batch_size: int
    max_new_tokens: int
    caption_max_new_tokens: int
    caption_prompt: str
    bootstrap_resamples: int
    yes_bias: float


def decoding(config: RunSettings, seed: int, vcd, stats, progress: bool) -> dict:
    """The decoding settings every benchmark of one evaluation shares (keyword arguments of answer_all)."""
    return {
        "batch_size": config.batch_size,
        "do_sample": config.protocol == "sample",
        "seed": seed,
        "progress": progress,
        "vcd": vcd,
        "stats": stats,
        "max_image_side": config.max_image_side,
        "yes_bias": config.yes_bias,
    }


def run_pope(
    model,
    processor,
    pope_dir: Path,
    images_dir: Path,
    answers_dir: Path,
    config: RunSettings,
    seed: int = 0,
    progress: bool = True,
    *,
    vcd: VCDSettings | None = None,
    stats: DecodeStats | None = None,
) -> dict:
    """Answer and score every POPE split found in ``pope_dir``; returns {split: metrics + f1_ci + auc}.

    ``auc`` is `seed.eval.pope.margin_auc` of the first answer token's yes-minus-no logit margin
    (after VCD's contrast for VCD), read from the same decoding pass as the answers.
    """
    from seed.eval.pope import (
        build_pope_prompt,
        f1_bootstrap_ci,
        load_pope_questions,
        margin_auc,
        parse_yes_no,
        pope_metrics,
    )
    from seed.model.generate import answer_all

    splits = pope_files(pope_dir)
    if not splits:
        raise DataError(pope_dir, f"no POPE files named *_pope_{{{','.join(POPE_SPLITS)}}}.json")
    results = {}
    for split, path in splits.items():
        questions = load_pope_questions(path)
        margins: list[float] = []
        answers = answer_all(
            model,
            processor,
            [Path(images_dir) / q["image"] for q in questions],
            [build_pope_prompt(q["text"]) for q in questions],
            max_new_tokens=config.max_new_tokens,
            desc=f"pope-{split}",
            margins=margins,
            **decoding(config, seed, vcd, stats, progress),
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
        metrics["auc"] = margin_auc(labels, margins)
        metrics["n"] = len(questions)
        results[split] = metrics
    return results


def run_mme(
    model,
    processor,
    mme_dir: Path,
    answers_dir: Path,
    config: RunSettings,
    seed: int = 0,
    progress: bool = True,
    *,
    vcd: VCDSettings | None = None,
    stats: DecodeStats | None = None,
) -> tuple[dict, dict[str, list[dict]]]:
    """Answer and score the MME hallucination subset; returns (scores, rows with predictions)."""
    from seed.eval.mme import load_mme, mme_score
    from seed.model.generate import answer_all

    rows_by_subtask = load_mme(mme_dir)
    for name, rows in rows_by_subtask.items():
        preds = answer_all(
            model,
            processor,
            [Path(r["image"]) for r in rows],
            [r["question"] for r in rows],
            max_new_tokens=config.max_new_tokens,
            desc=f"mme-{name}",
            **decoding(config, seed, vcd, stats, progress),
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
    flat["detail"] = {name: dict(scores[name]) for name in rows_by_subtask}
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


def run_colour_probe(
    model,
    processor,
    data_dir: Path,
    answers_dir: Path,
    config: RunSettings,
    progress: bool = True,
    *,
    seed: int = 0,
    vcd: VCDSettings | None = None,
    stats: DecodeStats | None = None,
) -> dict:
    """World diagnostic: "What color is the X?" on every single-instance object of the POPE images.

    Accuracy is split by whether the instance has its category's canonical colour (typical) or not
    (atypical: the white strawberry). Needs the world's annotations.json; not an official benchmark.
    """
    from seed.eval.pope import POPE_PROMPT_SUFFIX, load_pope_questions
    from seed.model.generate import answer_all

    annotations = load_world_annotations(data_dir / "annotations.json")
    canonical = {c["id"]: (c["name"], c["colour"]) for c in annotations["categories"]}
    pope = pope_files(data_dir / "pope")
    if not pope:
        return {}
    wanted = {q["image"] for q in load_pope_questions(next(iter(pope.values())))}
    by_file = {im["id"]: im["file_name"] for im in annotations["images"] if im["file_name"] in wanted}
    instances: dict[tuple[str, str], list[str]] = {}
    for ann in annotations["annotations"]:
        if ann["image_id"] in by_file:
            name, _ = canonical[ann["category_id"]]
            instances.setdefault((by_file[ann["image_id"]], name), []).append(ann["colour"])
    items = []
    for (file_name, name), colours in sorted(instances.items()):
        if len(colours) == 1:
            cat_colour = next(c for n, c in canonical.values() if n == name)
            items.append((file_name, name, colours[0], colours[0] != cat_colour))
    answers = answer_all(
        model,
        processor,
        [data_dir / "images" / "eval" / f for f, *_ in items],
        [f"What color is the {name}?{POPE_PROMPT_SUFFIX}" for _, name, *_ in items],
        max_new_tokens=config.max_new_tokens,
        desc="colour-probe",
        **decoding(config, seed, vcd, stats, progress),
    )
    right: dict[str, list[bool]] = {"typical": [], "atypical": []}
    rows = []
    for (file_name, name, colour, atypical), answer in zip(items, answers, strict=True):
        words = answer.lower().replace(".", " ").split()
        ok = bool(words) and words[0] == colour
        right["atypical" if atypical else "typical"].append(ok)
        rows.append(
            {"image": file_name, "object": name, "colour": colour, "atypical": atypical, "text": answer}
        )
    _write_jsonl(answers_dir / "colour_probe.jsonl", rows)
    return {k: (sum(v) / len(v) if v else None) for k, v in right.items()} | {
        f"n_{k}": len(v) for k, v in right.items()
    }


def run_chair(
    model,
    processor,
    data_dir: Path,
    answers_dir: Path,
    config: RunSettings,
    seed: int = 0,
    progress: bool = True,
    *,
    vcd: VCDSettings | None = None,
    stats: DecodeStats | None = None,
) -> dict:
    """Caption the CHAIR image list and score CHAIR_s / CHAIR_i against the instance annotations."""
    from seed.eval.chair import chair_metrics
    from seed.model.generate import answer_all

    paths = benchmark_paths(data_dir, config)
    listing = chair_image_list(paths, config)
    captions = answer_all(
        model,
        processor,
        [paths.images_dir / item["file_name"] for item in listing],
        [config.caption_prompt] * len(listing),
        max_new_tokens=config.caption_max_new_tokens,
        desc="chair",
        **decoding(config, seed, vcd, stats, progress),
    )
    _write_jsonl(
        answers_dir / "chair_captions.jsonl",
        [{"image_id": item["image_id"], "caption": c} for item, c in zip(listing, captions, strict=True)],
    )
    gt, _, _ = load_instances(paths.instances_file)
    return chair_metrics(
        {item["image_id"]: c for item, c in zip(listing, captions, strict=True)},
        gt,
        chair_synonyms(paths),
        source=str(paths.chair_images_file or paths.instances_file),
    )


def evaluate_model(
    model,
    processor,
    data_dir: Path,
    answers_dir: Path,
    config: RunSettings,
    seed: int = 0,
    progress: bool = True,
    *,
    vcd: VCDSettings | None = None,
    stats: DecodeStats | None = None,
) -> dict:
    """Every configured benchmark for one loaded model and one decoding method; returns its metrics.

    With ``vcd`` settings the model decodes with VCD, else regularly. The result holds ``cost``
    (`seed.model.vcd.DecodeStats.as_dict` over every answer it generated) and ``seconds``.
    """
    from seed.model.vcd import DecodeStats

    data_dir = Path(data_dir)
    stats = stats if stats is not None else DecodeStats()
    paths = benchmark_paths(data_dir, config)
    options = {"vcd": vcd, "stats": stats}
    result: dict = {}
    start = time.perf_counter()
    if "pope" in config.benchmarks:
        result["pope"] = run_pope(
            model, processor, paths.pope_dir, paths.images_dir, answers_dir, config, seed, progress, **options
        )
    if "mme" in config.benchmarks:
        result["mme"], rows = run_mme(
            model, processor, paths.mme_dir, answers_dir, config, seed, progress, **options
        )
        meta_path = paths.mme_dir / "meta.json"
        if meta_path.exists():
            result["colour_by_typicality"] = colour_accuracy_by_typicality(
                rows["color"], load_mme_meta(meta_path)
            )
    if paths.world_dir is not None and (data_dir / "annotations.json").exists():
        result["colour_probe"] = run_colour_probe(
            model, processor, data_dir, answers_dir, config, progress, seed=seed, **options
        )
    if "chair" in config.benchmarks:
        result["chair"] = run_chair(
            model, processor, data_dir, answers_dir, config, seed, progress, **options
        )
    result["cost"] = stats.as_dict()
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result
