"""CHAIR (Rohrbach et al. 2018): how many objects a caption mentions that the image does not hold.

Object words in a caption are mapped to categories through a synonym list ("bike" -> bicycle);
a mention is hallucinated when its category is not among the image's ground-truth objects.

- CHAIR_i = hallucinated mentions / all mentions (instance level),
- CHAIR_s = captions with at least one hallucinated mention / all captions (sentence level).

Differences from the original script, on purpose: words are found by a plain tokenizer and a small
plural rule instead of NLTK, and its hard-coded phrase rules ("baby <animal>" -> the animal,
"toilet seat" -> toilet) are not built in; add such phrases to the synonym list as multi-word
synonyms, which are always matched before single words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seed.errors import DataError
from seed.files.inputs import read_json

_WORD = re.compile(r"[^\W_]+")

ImageId = int | str


def tokenize(text: str) -> list[str]:
    """Lowercase words of `text`: runs of letters and digits; punctuation and '_' separate words."""
    return _WORD.findall(text.lower())


def _normalize_term(term: str) -> str:
    return " ".join(tokenize(term))


def load_synonyms(path: str | Path) -> dict[str, str]:
    """Read a CHAIR synonym list into word -> category.

    One category a line: ``name, synonym, synonym, ...``; the name maps to itself. Terms are
    lowercased and tokenized like captions ("T-shirt" -> "t shirt"), so multi-word synonyms
    ("motor bike") and listed plurals ("people") work as written; repeated terms on one line are
    fine. Blank lines and lines starting with '#' are skipped. Raises `DataError` (file, line) if the
    file cannot be read, a term is empty, or a term is claimed by two categories.
    """
    path = Path(path)
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte {exc.start})") from exc
    synonyms: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line_no, line in enumerate(content.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        raw_terms = [t.strip() for t in line.split(",")]
        if raw_terms and not raw_terms[-1]:
            raw_terms.pop()  # a trailing comma
        category = " ".join(raw_terms[0].lower().split())
        for raw in raw_terms:
            term = _normalize_term(raw)
            if not term:
                raise DataError(path, f"empty synonym in {line.strip()!r}", row=line_no)
            if synonyms.get(term, category) != category:
                raise DataError(
                    path,
                    f"'{term}' belongs to '{synonyms[term]}' (line {first_line[term]}) and to '{category}'",
                    row=line_no,
                )
            synonyms[term] = category
            first_line.setdefault(term, line_no)
    if not synonyms:
        raise DataError(path, "synonym list is empty")
    return synonyms


def _singular_forms(word: str) -> list[str]:
    """Candidate singulars of a word not found as written: -s, -es, -ies -> -y, in that order."""
    forms = []
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        forms.append(word[:-1])
        if word.endswith("es") and len(word) > 3:
            forms.append(word[:-2])
        if word.endswith("ies") and len(word) > 4:
            forms.append(word[:-3] + "y")
    return forms


def _lookup(words: list[str], synonyms: Mapping[str, str]) -> str | None:
    """The category of the phrase `words`, trying its last word's singular forms if needed."""
    phrase = " ".join(words)
    if phrase in synonyms:
        return synonyms[phrase]
    head = " ".join(words[:-1])
    for singular in _singular_forms(words[-1]):
        candidate = f"{head} {singular}" if head else singular
        if candidate in synonyms:
            return synonyms[candidate]
    return None


def _longest_phrase(synonyms: Mapping[str, str]) -> int:
    return max((term.count(" ") + 1 for term in synonyms), default=1)


def _extract(tokens: list[str], synonyms: Mapping[str, str], max_words: int) -> list[str]:
    found: list[str] = []
    i = 0
    while i < len(tokens):
        for length in range(min(max_words, len(tokens) - i), 0, -1):
            category = _lookup(tokens[i : i + length], synonyms)
            if category is not None:
                found.append(category)
                i += length
                break
        else:
            i += 1
    return found


def extract_objects(caption: str, synonyms: Mapping[str, str]) -> list[str]:
    """Categories mentioned in `caption`, one entry per mention, in caption order.

    The caption is lowercased and split into words (punctuation dropped). At each word the longest
    synonym phrase that starts there wins ("hot dog" before "dog"), and its words are consumed. A
    word not in the list is retried as a singular (-s, -es, -ies -> -y): "bikes" -> "bike". So
    "Two dogs and a puppy" gives ["dog", "dog"] with "puppy" listed under dog.
    """
    return _extract(tokenize(caption), synonyms, _longest_phrase(synonyms))


def _gt_categories(objects: set[str], synonyms: Mapping[str, str]) -> set[str]:
    """Ground-truth names as synonym categories (a COCO name listed as a synonym maps to its category)."""
    categories = set()
    for name in objects:
        category = " ".join(name.lower().split())
        categories.add(synonyms.get(_normalize_term(name), category))
    return categories


def score_caption(caption: str, objects: set[str], synonyms: Mapping[str, str]) -> dict[str, list[str]]:
    """One caption against its image's objects: {"mentions": [...], "hallucinated": [...]}."""
    truth = _gt_categories(objects, synonyms)
    mentions = extract_objects(caption, synonyms)
    return {"mentions": mentions, "hallucinated": [m for m in mentions if m not in truth]}


def chair_metrics(
    captions: Mapping[ImageId, str],
    gt_objects: Mapping[ImageId, set[str]],
    synonyms: Mapping[str, str],
    source: str = "<captions>",
) -> dict[str, float]:
    """CHAIR over a caption set: chair_i, chair_s, recall and the counts behind them.

    chair_i = n_hallucinated_mentions / n_mentions; chair_s = n_hallucinated_captions / n_captions;
    recall = ground-truth categories mentioned / ground-truth categories, summed over images (a
    caption that names nothing scores 0 on CHAIR, so read CHAIR with recall or caption length).
    Empty cases are 0.0, never NaN: no mentions -> chair_i 0.0; no captions -> chair_s 0.0; no
    ground-truth objects -> recall 0.0. Ground-truth names are mapped through `synonyms` too.
    A caption whose image_id has no ground-truth entry is a `DataError` naming `source`.
    """
    max_words = _longest_phrase(synonyms)
    n_mentions = n_hallucinated_mentions = n_hallucinated_captions = 0
    n_gt = n_gt_mentioned = 0
    for image_id, caption in captions.items():
        if image_id not in gt_objects:
            raise DataError(
                source, f"image_id {image_id!r} has no ground-truth objects entry", field="image_id"
            )
        truth = _gt_categories(gt_objects[image_id], synonyms)
        mentions = _extract(tokenize(caption), synonyms, max_words)
        hallucinated = sum(m not in truth for m in mentions)
        n_mentions += len(mentions)
        n_hallucinated_mentions += hallucinated
        n_hallucinated_captions += hallucinated > 0
        n_gt += len(truth)
        n_gt_mentioned += len(truth & set(mentions))
    n_captions = len(captions)
    return {
        "chair_i": n_hallucinated_mentions / n_mentions if n_mentions else 0.0,
        "chair_s": n_hallucinated_captions / n_captions if n_captions else 0.0,
        "recall": n_gt_mentioned / n_gt if n_gt else 0.0,
        "n_captions": n_captions,
        "n_hallucinated_captions": n_hallucinated_captions,
        "n_mentions": n_mentions,
        "n_hallucinated_mentions": n_hallucinated_mentions,
    }


def _json_list(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise DataError(path, f"expected a list under '{key}'", field=key)
    return value


def _id(path: Path, entry: Any, key: str, field: str, index: int) -> ImageId:
    value = entry.get(key) if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(
            path, f"entry needs an integer or string '{key}', got {value!r}", field=field, row=index
        )
    return value


def load_coco_instances(path: str | Path, data: Any = None) -> dict[ImageId, set[str]]:
    """Read a COCO instances file into image_id -> set of category names present.

    Every image of "images" appears, with an empty set when it has no annotation. Works for COCO's
    instances_*.json and for a world's annotations.json. ``data``: the file's already parsed value,
    if the caller has it (``path`` then only names the file in errors). Raises `DataError` (file,
    field, index as `row`) on unreadable JSON, missing lists, or an annotation naming an unknown image
    or category.
    """
    path = Path(path)
    if data is None:
        data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, "expected a JSON object with images, annotations and categories")
    names: dict[ImageId, str] = {}
    for index, category in enumerate(_json_list(path, data, "categories")):
        category_id = _id(path, category, "id", "categories.id", index)
        name = category.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DataError(
                path, f"category needs a non-empty 'name', got {name!r}", field="categories.name", row=index
            )
        names[category_id] = name
    objects: dict[ImageId, set[str]] = {}
    for index, image in enumerate(_json_list(path, data, "images")):
        objects.setdefault(_id(path, image, "id", "images.id", index), set())
    for index, annotation in enumerate(_json_list(path, data, "annotations")):
        image_id = _id(path, annotation, "image_id", "annotations.image_id", index)
        category_id = _id(path, annotation, "category_id", "annotations.category_id", index)
        if image_id not in objects:
            raise DataError(path, f"unknown image_id {image_id!r}", field="annotations.image_id", row=index)
        if category_id not in names:
            raise DataError(
                path, f"unknown category_id {category_id!r}", field="annotations.category_id", row=index
            )
        objects[image_id].add(names[category_id])
    return objects
