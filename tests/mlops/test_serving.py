from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from seed.mlops.serving import main_answer

QUESTION = "Is there a cat in the image?"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, mlflow_template) -> dict[str, Path]:
    """A tiny LLaVA checkpoint, a non-zero LoRA adapter, an image, and that adapter registered as champion."""
    import mlflow
    from PIL import Image

    from seed.base.tiny import load_tiny, save_tiny
    from seed.mlops.gate import PromoteConfig
    from seed.mlops.registry import promote, register_adapter
    from seed.mlops.tracking import configure
    from seed.model.adapter import AdapterConfig, attach_adapter, save_adapter

    root = tmp_path_factory.mktemp("serving")
    base = save_tiny("llava", root / "base")
    model, _ = load_tiny(base)
    torch.manual_seed(0)
    peft_model = attach_adapter(model, AdapterConfig(lora_r=2, lora_alpha=4))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    adapter = save_adapter(peft_model, root / "adapter")
    Image.new("RGB", (32, 32), (30, 200, 30)).save(root / "green.png")
    store = root / "store"
    store.mkdir()
    shutil.copy(mlflow_template, store / "mlflow.db")
    experiment_id = configure(store)
    good = {
        "pope": {"random": 0.9, "popular": 0.9, "adversarial": 0.9},
        "mme": {"existence": 200.0, "count": 200.0, "position": 200.0, "color": 200.0},
    }
    base_scores = {"pope": {s: 0.5 for s in good["pope"]}, "mme": dict(good["mme"])}
    with mlflow.start_run(experiment_id=experiment_id):
        version, _ = register_adapter(adapter, base, good)
    assert promote(version.version, base_scores, PromoteConfig()).champion
    return {"base": base, "adapter": adapter, "image": root / "green.png", "store": store}


def _answer(argv, capsys) -> tuple[int, str, str]:
    code = main_answer(argv)
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_checkpoint_answer_equals_answer_batch(tiny, capsys):
    from seed.model.generate import answer_batch, load_model, open_image

    code, out, _ = _answer(
        ["--model", str(tiny["base"]), "--image", str(tiny["image"]), "--question", QUESTION], capsys
    )
    model, processor = load_model(tiny["base"])
    assert code == 0 and out == answer_batch(model, processor, [open_image(tiny["image"])], [QUESTION], 32)[0]


def test_registered_champion_answers_like_base_plus_adapter(tiny, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = ["--image", str(tiny["image"]), "--question", QUESTION]
    code, merged, _ = _answer(
        ["--model", str(tiny["base"]), "--adapter", str(tiny["adapter"]), *argv], capsys
    )
    assert code == 0
    monkeypatch.chdir(tiny["store"])  # the default store is ./mlflow.db
    code, served, err = _answer(["--model-uri", "models:/seed-lvlm@champion", *argv], capsys)
    assert code == 0, err
    assert served == merged


def test_errors_are_one_line(tiny, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    missing = tmp_path / "missing.png"
    code, _, err = _answer(
        ["--model", str(tiny["base"]), "--image", str(missing), "--question", QUESTION], capsys
    )
    assert code == 2 and err == f"error: {missing}: image not found"
    argv = ["--image", str(tiny["image"]), "--question", QUESTION]
    code, _, err = _answer(["--model", str(tiny["base"]), "--adapter", str(tmp_path), *argv], capsys)
    assert code == 2 and "not a PEFT adapter folder" in err
    uri = f"sqlite:///{tiny['store'] / 'mlflow.db'}"
    code, _, err = _answer(["--model-uri", "models:/seed-lvlm@nope", "--tracking-uri", uri, *argv], capsys)
    assert code == 2 and err.startswith("error: models:/seed-lvlm@nope: cannot load") and "\n" not in err
    code, _, err = _answer(
        ["--model-uri", "models:/seed-lvlm@champion", "--adapter", str(tmp_path), *argv], capsys
    )
    assert code == 2 and "--adapter goes with --model" in err
    with pytest.raises(SystemExit) as exit_info:
        main_answer(argv)  # neither --model nor --model-uri
    assert exit_info.value.code == 2
