"""Stage `evaluate`: POPE (three splits), the MME hallucination subset and CHAIR, per decoding method.

```
 methods   base  = the model, regular decoding            (1 forward per token)
           vcd   = the model, visual contrastive decoding  (2 forwards per token, seed.model.vcd)
           seed  = the model + merged SEED adapter, regular decoding (1 forward per token)
 protocol  greedy                       -> reports/metrics.json
           sample (T=1, top_p=1, seeds) -> reports/metrics_sample.json (mean and *_std over seeds)
```

Answers are written in the official formats (POPE answers JSONL with ``question_id`` and ``text``;
MME lines ``image<TAB>question<TAB>answer<TAB>prediction``; CHAIR captions JSONL) and scored with the
official rules in ``seed.eval``. The evaluation never adapts to the model: prompts and parsing are
fixed (see ``seed.eval.pope.build_pope_prompt``). Every method decodes the same questions in the
same batches through the same loop, which also counts its cost: model forward calls per generated
token and generated tokens per second.

Real data goes through the same code: ``pope_dir`` (the official ``coco_pope_<split>.json`` files)
with ``images_dir`` (a COCO ``val2014/`` folder), ``mme_dir`` (the MME release folder) and, for
CHAIR, ``instances_file`` (COCO ``instances_val2014.json``) with ``synonyms_file``; unset paths
default to the world layout under the data folder (docs/data-format.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import ConfigError, DataError
from seed.eval.pope import POPE_SPLITS
from seed.files.atomic import write_json as _write_json
from seed.files.atomic import write_jsonl as _write_jsonl
from seed.files.inputs import DEFAULT_MAX_IMAGE_SIDE, MAX_PROMPT_CHARS, check_relative_name, read_json
from seed.params import check_range

if TYPE_CHECKING:
    from seed.model.vcd import DecodeStats, VCDSettings

SECTION = "evaluate"
METHODS = ("base", "vcd", "seed")
BENCHMARKS = ("pope", "mme", "chair")
MIN_SAMPLE_SEEDS = 3


@dataclass
class EvaluateConfig:
    """Settings of stage `evaluate` (params.yaml section ``evaluate``).

    protocol: ``greedy`` or ``sample`` (temperature 1, top_p 1, one run per seed of ``sample_seeds``,
    at least 3; metrics are the mean over seeds with ``*_std``). methods: any of base, vcd, seed
    (seed needs an adapter; without one it is skipped). cd_alpha / cd_beta / noise_step: VCD's
    contrast strength, plausibility cut-off and diffusion noise step. yes_bias: a constant added to
    the "Yes" logit and taken from the "No" logit at every step (0: none; the `bias` control sets it,
    tuned on a validation world). pope_dir, images_dir, mme_dir,
    instances_file, synonyms_file: real-data paths (None: the world layout under the data folder).
    chair_images_file: JSON list of ``{"image_id", "file_name"}`` to caption (None: the world's
    ``chair/images.json``, else ``chair_n_images`` images drawn with a fixed seed from the
    instances file). dtype / device: where the model runs. max_image_side: largest image side in
    pixels that is decoded (a bigger image is a `DataError` naming the file).
    """

    protocol: str = "greedy"
    sample_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    batch_size: int = 64
    max_new_tokens: int = 6  # yes/no questions
    caption_max_new_tokens: int = 48
    caption_prompt: str = "Describe the image briefly."
    bootstrap_resamples: int = 1000
    benchmarks: list[str] = field(default_factory=lambda: list(BENCHMARKS))
    cd_alpha: float = 1.0
    cd_beta: float = 0.1
    noise_step: int = 500
    yes_bias: float = 0.0
    pope_dir: str | None = None
    images_dir: str | None = None
    mme_dir: str | None = None
    instances_file: str | None = None
    synonyms_file: str | None = None
    chair_images_file: str | None = None
    chair_n_images: int = 500
    dtype: str = "float32"
    device: str = "cpu"
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE

    def __post_init__(self) -> None:
        from seed.params import check_runtime

        if self.protocol not in ("greedy", "sample"):
            raise ConfigError(f"{SECTION}.protocol = {self.protocol!r} must be 'greedy' or 'sample'")
        check_range(SECTION, "batch_size", self.batch_size, lo=1)
        check_range(SECTION, "max_new_tokens", self.max_new_tokens, lo=1)
        check_range(SECTION, "caption_max_new_tokens", self.caption_max_new_tokens, lo=1)
        check_range(SECTION, "bootstrap_resamples", self.bootstrap_resamples, lo=0)
        check_range(SECTION, "cd_alpha", self.cd_alpha, lo=0)
        check_range(SECTION, "cd_beta", self.cd_beta, lo=0, hi=1)
        check_range(SECTION, "noise_step", self.noise_step, lo=0, hi=999)
        check_range(SECTION, "chair_n_images", self.chair_n_images, lo=1)
        check_range(SECTION, "max_image_side", self.max_image_side, lo=1)
        if not self.caption_prompt.strip() or len(self.caption_prompt) > MAX_PROMPT_CHARS:
            raise ConfigError(
                f"{SECTION}.caption_prompt must be non-empty and at most {MAX_PROMPT_CHARS} characters"
            )
        self.benchmarks = _names(self.benchmarks)
        self.methods = _names(self.methods)
        for key, values, known in (
            ("benchmarks", self.benchmarks, BENCHMARKS),
            ("methods", self.methods, METHODS),
        ):
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ConfigError(f"{SECTION}.{key}: unknown {unknown}; choose from {', '.join(known)}")
        if not self.methods:
            raise ConfigError(f"{SECTION}.methods is empty; choose from {', '.join(METHODS)}")
        if len(set(self.sample_seeds)) != len(self.sample_seeds):
            raise ConfigError(f"{SECTION}.sample_seeds = {self.sample_seeds} repeats a seed")
        if self.protocol == "sample" and len(self.sample_seeds) < MIN_SAMPLE_SEEDS:
            raise ConfigError(
                f"{SECTION}.sample_seeds must list at least {MIN_SAMPLE_SEEDS} seeds for the sample "
                f"protocol (mean and std over seeds), got {self.sample_seeds}"
            )
        check_runtime(SECTION, self.dtype, self.device)

    def vcd_settings(self) -> VCDSettings:
        from seed.model.vcd import VCDSettings

        return VCDSettings(cd_alpha=self.cd_alpha, cd_beta=self.cd_beta, noise_step=self.noise_step)


def _names(value: list[str] | str) -> list[str]:
    """A list of names, also from one comma-separated string ("base,vcd" from the command line)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


# ---------------------------------------------------------------------------------------------------
# Where the benchmarks are


@dataclass(frozen=True)
class BenchmarkPaths:
    """Resolved benchmark locations; ``world`` is True when the world diagnostics can run."""

    pope_dir: Path
    images_dir: Path
    mme_dir: Path
    instances_file: Path
    synonyms_file: Path | None
    chair_images_file: Path | None
    world_dir: Path | None


def benchmark_paths(data_dir: Path, config: EvaluateConfig) -> BenchmarkPaths:
    """The configured real-data paths, each defaulting to the world layout under ``data_dir``."""
    data_dir = Path(data_dir)

    def pick(value: str | None, default: Path) -> Path:
        return Path(value) if value else default

    world_synonyms = data_dir / "synonyms.txt"
    world_chair = data_dir / "chair" / "images.json"
    real_chair = bool(config.instances_file) or bool(config.images_dir)
    own_world = (data_dir / "world.json").is_file() and not (config.pope_dir or config.images_dir)
    return BenchmarkPaths(
        pope_dir=pick(config.pope_dir, data_dir / "pope"),
        images_dir=pick(config.images_dir, data_dir / "images" / "eval"),
        mme_dir=pick(config.mme_dir, data_dir / "mme"),
        instances_file=pick(config.instances_file, data_dir / "annotations.json"),
        synonyms_file=pick(config.synonyms_file, world_synonyms)
        if (config.synonyms_file or world_synonyms.is_file())
        else None,
        chair_images_file=pick(config.chair_images_file, world_chair)
        if (config.chair_images_file or (world_chair.is_file() and not real_chair))
        else None,
        world_dir=data_dir if own_world else None,
    )


def decoding(config: EvaluateConfig, seed: int, vcd, stats, progress: bool) -> dict:
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


def pope_files(pope_dir: Path) -> dict[str, Path]:
    """split -> POPE file in ``pope_dir`` (``*_pope_<split>.json``, as the official files are named)."""
    found = {}
    for split in POPE_SPLITS:
        matches = sorted(Path(pope_dir).glob(f"*_pope_{split}.json"))
        if matches:
            found[split] = matches[0]
    return found


# ---------------------------------------------------------------------------------------------------
# One benchmark, one model


def run_pope(
    model,
    processor,
    pope_dir: Path,
    images_dir: Path,
    answers_dir: Path,
    config: EvaluateConfig,
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
    config: EvaluateConfig,
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
    config: EvaluateConfig,
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


@functools.lru_cache(maxsize=2)
def _instances(path: str, mtime_ns: int) -> tuple[dict, dict, list[str]]:
    """(image_id -> object names, image_id -> file_name, category names) of a COCO instances file."""
    from seed.eval.chair import load_coco_instances

    data = read_json(path)
    objects = load_coco_instances(path, data)  # validates the structure read below
    files = {}
    for index, image in enumerate(data["images"]):
        check_relative_name(image.get("file_name"), path, "images.file_name", index)
        files[image["id"]] = image["file_name"]
    return objects, files, [c["name"] for c in data["categories"]]


def load_instances(path: Path) -> tuple[dict, dict, list[str]]:
    """A COCO instances file, read once per process (cached by path and modification time)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "COCO instances file not found (set evaluate.instances_file)")
    return _instances(str(path), path.stat().st_mtime_ns)


def chair_image_list(paths: BenchmarkPaths, config: EvaluateConfig) -> list[dict]:
    """The images to caption: ``[{"image_id", "file_name"}]``.

    From ``chair_images_file`` when there is one (the world's ``chair/images.json``); otherwise
    ``chair_n_images`` images of the instances file drawn with a fixed seed (0), in id order, as the
    CHAIR protocol samples 500 COCO val2014 images.
    """
    import numpy as np

    if paths.chair_images_file is not None:
        path = paths.chair_images_file
        listing = read_json(path)
        if not isinstance(listing, list):
            raise DataError(path, "expected a list of {image_id, file_name}")
        for row, item in enumerate(listing):
            for key in ("image_id", "file_name"):
                if not isinstance(item, dict) or key not in item:
                    raise DataError(path, "missing key", field=key, row=row)
            if isinstance(item["image_id"], bool) or not isinstance(item["image_id"], int | str):
                raise DataError(path, "must be an integer or a string", field="image_id", row=row)
            check_relative_name(item["file_name"], path, "file_name", row)
        return listing
    _, files, _ = load_instances(paths.instances_file)
    ids = sorted(files, key=str)
    if len(ids) > config.chair_n_images:
        chosen = np.random.default_rng(0).choice(len(ids), size=config.chair_n_images, replace=False)
        ids = [ids[i] for i in sorted(chosen)]
    return [{"image_id": i, "file_name": files[i]} for i in ids]


def load_mme_meta(path: Path) -> dict[str, dict]:
    """The world's ``mme/meta.json``: ``"<subtask>/<file>" -> {"object", "atypical", ...}``."""
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataError(path, "expected a JSON object of '<subtask>/<file>' -> {object, atypical}")
    for key, info in meta.items():
        if not isinstance(info, dict):
            raise DataError(path, 'must be an object such as {"object": ..., "atypical": false}', field=key)
    return meta


def load_world_annotations(path: Path) -> dict[str, list[dict]]:
    """The world's ``annotations.json``, checked for what the colour probe reads.

    Categories need ``id``, ``name`` and ``colour``; images ``id`` and ``file_name``; annotations
    ``image_id``, a known ``category_id`` and ``colour``. `DataError` names the list, index and key.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, "expected a JSON object with images, annotations and categories")
    wanted = {
        "categories": ("id", "name", "colour"),
        "images": ("id", "file_name"),
        "annotations": ("image_id", "category_id", "colour"),
    }
    for section, keys in wanted.items():
        entries = data.get(section)
        if not isinstance(entries, list):
            raise DataError(path, "expected a list", field=section)
        for index, entry in enumerate(entries):
            for key in keys:
                if not isinstance(entry, dict) or key not in entry:
                    raise DataError(path, "missing key", field=f"{section}.{key}", row=index)
                if isinstance(entry[key], list | dict):
                    raise DataError(path, "must be a number or a string", field=f"{section}.{key}", row=index)
    known = {c["id"] for c in data["categories"]}
    for index, annotation in enumerate(data["annotations"]):
        if annotation["category_id"] not in known:
            raise DataError(path, "unknown category", field="annotations.category_id", row=index)
    return data


def check_inputs(data_dir: Path, config: EvaluateConfig) -> int:
    """Read every file the configured evaluation will read, and decode every image once.

    Runs before any model loads or any answer is written: a malformed POPE line, an unpaired MME
    question, a broken CHAIR list, a corrupt or oversized image or a name that leaves its folder
    fails here, as a `DataError` naming file and field, with nothing written. Returns the number of
    distinct images checked.
    """
    from seed.eval.chair import load_synonyms
    from seed.eval.mme import load_mme
    from seed.eval.pope import load_pope_questions
    from seed.files.inputs import resolve_inside
    from seed.model.generate import open_image

    data_dir = Path(data_dir)
    paths = benchmark_paths(data_dir, config)
    images: dict[Path, None] = {}
    if "pope" in config.benchmarks:
        splits = pope_files(paths.pope_dir)
        if not splits:
            raise DataError(paths.pope_dir, "no POPE files named *_pope_{random,popular,adversarial}.json")
        for path in splits.values():
            names = dict.fromkeys(question["image"] for question in load_pope_questions(path))
            for name in names:  # thousands of questions, a few hundred images
                images[resolve_inside(paths.images_dir, name, path, "image")] = None
    if "mme" in config.benchmarks:
        for rows in load_mme(paths.mme_dir).values():
            images.update(dict.fromkeys(Path(row["image"]) for row in rows))
        if (paths.mme_dir / "meta.json").exists():
            load_mme_meta(paths.mme_dir / "meta.json")
    if paths.world_dir is not None and (data_dir / "annotations.json").exists():
        load_world_annotations(data_dir / "annotations.json")
    if "chair" in config.benchmarks:
        listing = chair_image_list(paths, config)
        source = paths.chair_images_file or paths.instances_file
        for row, item in enumerate(listing):
            images[resolve_inside(paths.images_dir, item["file_name"], source, "file_name", row)] = None
        load_instances(paths.instances_file)
        if paths.synonyms_file is not None:
            load_synonyms(paths.synonyms_file)
    for image in images:
        open_image(image, config.max_image_side)
    return len(images)


def chair_synonyms(paths: BenchmarkPaths) -> dict[str, str]:
    """The CHAIR synonym list, or (without one) each category name of the instances file as itself."""
    from seed.eval.chair import load_synonyms

    if paths.synonyms_file is not None:
        return load_synonyms(paths.synonyms_file)
    _, _, names = load_instances(paths.instances_file)
    print(f"note: no CHAIR synonym list given; matching the {len(names)} category names only")
    return {" ".join(n.lower().split()): " ".join(n.lower().split()) for n in names}


def run_chair(
    model,
    processor,
    data_dir: Path,
    answers_dir: Path,
    config: EvaluateConfig,
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
    config: EvaluateConfig,
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


# ---------------------------------------------------------------------------------------------------
# The stage


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def mean_over_seeds(runs: list[dict]) -> dict:
    """Merge the metric dicts of runs with different seeds: means, plus ``<key>_std`` per varying number.

    Nested dicts merge key by key. A number becomes the mean over runs and gains ``<key>_std``
    (sample standard deviation, n - 1; 0.0 for one run), except integers equal in every run (counts
    such as ``n``), which stay as they are. Lists of numbers (``f1_ci``) are averaged element-wise.
    Anything else (None, strings) is taken from the first run.
    """
    if not runs:
        raise ValueError("mean_over_seeds needs at least one run")
    merged: dict = {}
    for key, first in runs[0].items():
        values = [run.get(key) for run in runs]
        if all(isinstance(v, dict) for v in values):
            merged[key] = mean_over_seeds(values)
        elif all(_is_number(v) for v in values):
            if all(isinstance(v, int) for v in values) and len(set(values)) == 1:
                merged[key] = first
            else:
                merged[key] = statistics.fmean(values)
                merged[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        elif all(isinstance(v, list) and len(v) == len(first) and all(map(_is_number, v)) for v in values):
            merged[key] = [statistics.fmean(column) for column in zip(*values, strict=True)]
        else:
            merged[key] = first
    return merged


def selected_methods(config: EvaluateConfig, adapter_dir: Path | None) -> list[str]:
    """The configured methods in canonical order (base, vcd, seed); seed only with an adapter."""
    methods = [m for m in METHODS if m in config.methods]
    if "seed" in methods and adapter_dir is None:
        print("note: method 'seed' skipped: no adapter given (--adapter / artifacts/adapter)")
        methods.remove("seed")
    return methods


def metrics_name(protocol: str) -> str:
    """``metrics.json`` for the greedy protocol, ``metrics_sample.json`` for the sampling protocol."""
    return "metrics.json" if protocol == "greedy" else "metrics_sample.json"


@dataclass(frozen=True)
class MethodSpec:
    """One row of an evaluation: which adapter is merged (None: the model alone), whether it decodes
    with VCD, and the constant yes/no logit bias it decodes with."""

    adapter: Path | None = None
    vcd: bool = False
    yes_bias: float = 0.0


def evaluate_methods(
    model_dir: Path,
    data_dir: Path,
    out_dir: Path,
    config: EvaluateConfig,
    methods: dict[str, MethodSpec],
    metrics_file: str,
    progress: bool = True,
) -> dict:
    """Evaluate each named method on every configured benchmark; writes answers, ``metrics_file``, plots.

    Methods that share an adapter share one loaded model. Greedy: one run, answers under
    ``out_dir/answers/<method>/``. Sample: one run per seed under ``out_dir/answers_sample/<method>/
    seed-<s>/``, with means and ``*_std`` over seeds. Schema::

        {"protocol", "pope": {method: {split: {accuracy, precision, recall, f1, yes_ratio, f1_ci, auc, n}}},
         "mme": {method: {existence, count, position, color, total, detail}},
         "chair": {method: {chair_s, chair_i, recall, ...}},
         "cost": {method: {forwards_per_token, tokens_per_second, tokens, forwards, steps, seconds}},
         "diagnostics": {method: {...}}, "seconds": {method: s}, "settings": {...}}
    """
    from seed.model.generate import load_model
    from seed.report import write_plots

    out_dir = Path(out_dir)
    check_inputs(data_dir, config)  # bad data fails here, before a model loads or a file is written
    seeds = [0] if config.protocol == "greedy" else list(config.sample_seeds)
    runs: dict[str, list[dict]] = {}
    model = processor = None
    loaded: object = ()
    for method, spec in methods.items():
        if model is None or spec.adapter != loaded:
            model = processor = None  # free the previous model before loading the next
            model, processor = load_model(
                model_dir, adapter=spec.adapter, dtype=config.dtype, device=config.device
            )
            loaded = spec.adapter
        method_config = dataclasses.replace(config, yes_bias=spec.yes_bias)
        for seed in seeds:
            if config.protocol == "greedy":
                answers_dir = out_dir / "answers" / method
            else:
                answers_dir = out_dir / "answers_sample" / method / f"seed-{seed}"
            vcd = config.vcd_settings() if spec.vcd else None
            result = evaluate_model(
                model, processor, data_dir, answers_dir, method_config, seed=seed, progress=progress, vcd=vcd
            )
            runs.setdefault(method, []).append(result)
    metrics: dict = {"protocol": config.protocol}
    if config.protocol == "sample":
        metrics["seeds"] = seeds
    for method, results in runs.items():
        merged = results[0] if len(results) == 1 and config.protocol == "greedy" else mean_over_seeds(results)
        for key in (*BENCHMARKS, "cost"):
            if key in merged:
                metrics.setdefault(key, {})[method] = merged[key]
        diagnostics = {k: merged[k] for k in ("colour_by_typicality", "colour_probe") if k in merged}
        if diagnostics:
            metrics.setdefault("diagnostics", {})[method] = diagnostics
        metrics.setdefault("seconds", {})[method] = round(sum(r["seconds"] for r in results), 1)
    metrics["settings"] = {
        "methods": list(methods),
        "vcd": dataclasses.asdict(config.vcd_settings()),
        "batch_size": config.batch_size,
        "max_new_tokens": config.max_new_tokens,
        "caption_max_new_tokens": config.caption_max_new_tokens,
    }
    biases = {m: spec.yes_bias for m, spec in methods.items() if spec.yes_bias}
    if biases:
        metrics["settings"]["yes_bias"] = biases
    _write_json(out_dir / metrics_file, _finite(metrics))
    write_plots(metrics, out_dir)
    return metrics


def evaluate_stage(
    model_dir: Path,
    data_dir: Path,
    out_dir: Path,
    config: EvaluateConfig,
    adapter_dir: Path | None = None,
    progress: bool = True,
) -> dict:
    """Stage `evaluate`: every configured method (base, vcd, seed) on every benchmark.

    ``base`` and ``vcd`` run the model, ``seed`` the model with ``adapter_dir`` merged (skipped with a
    note when there is no adapter). Metrics go to ``out_dir/metrics.json`` (greedy) or
    ``out_dir/metrics_sample.json`` (sample); the schema is `evaluate_methods`'.
    """
    specs = {
        "base": MethodSpec(),
        "vcd": MethodSpec(vcd=True),
        "seed": MethodSpec(adapter=Path(adapter_dir) if adapter_dir else None),
    }
    methods = {m: specs[m] for m in selected_methods(config, adapter_dir)}
    return evaluate_methods(
        model_dir, data_dir, out_dir, config, methods, metrics_name(config.protocol), progress=progress
    )


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
