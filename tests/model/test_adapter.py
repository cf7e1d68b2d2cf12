from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from seed.base.tiny import build_tiny
from seed.errors import ConfigError
from seed.model.adapter import (
    AdapterConfig,
    attach_adapter,
    find_lora_targets,
    load_adapter,
    lora_module_names,
    merge_adapter,
    save_adapter,
    teacher_logits,
)
from seed.model.batching import build_batch
from seed.params import config_from_dict

ARCHS = ["llava", "qwen2_vl", "internvl"]
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
VISION = ("model.vision_tower.", "model.visual.", "model.multi_modal_projector.")
CONFIG = AdapterConfig(lora_r=4, lora_alpha=8)


def _batch(processor):
    images = [Image.new("RGB", (40, 28), (200, 30, 30)), Image.new("RGB", (64, 48), (30, 200, 30))]
    return build_batch(
        processor, images, ["Is there a cat?", "What is it?"], ["Yes, there is.", "A red bus."]
    )


def _logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture(scope="module", params=ARCHS)
def trained(request, tmp_path_factory):
    """One arch through the adapter's life: base logits, attach, one optimiser step, save."""
    arch = request.param
    model, processor = build_tiny(arch)
    batch = _batch(processor)
    base = _logits(model, batch)
    peft_model = attach_adapter(model, CONFIG)
    at_init = _logits(peft_model, batch)
    peft_model.train()
    optimiser = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model(**batch).loss.backward()
    optimiser.step()
    peft_model.eval()
    after = _logits(peft_model, batch)
    with torch.no_grad(), peft_model.disable_adapter():
        disabled = peft_model(**batch).logits
    folder = save_adapter(peft_model, tmp_path_factory.mktemp(f"adapter_{arch}"))
    return {
        "arch": arch,
        "batch": batch,
        "base": base,
        "at_init": at_init,
        "after": after,
        "disabled": disabled,
        "peft": peft_model,
        "folder": folder,
    }


def test_config_defaults_and_validation():
    config = AdapterConfig()
    assert (config.lora_r, config.lora_alpha, config.lora_dropout, config.target_modules) == (
        16,
        32,
        0.0,
        "auto",
    )
    for field, bad in [
        ("lora_r", 0),
        ("lora_r", 2.5),
        ("lora_alpha", 0),
        ("lora_dropout", 1.0),
        ("lora_dropout", -0.1),
        ("target_modules", []),
        ("target_modules", "q_proj("),
    ]:
        with pytest.raises(ConfigError, match=f"distill.adapter.{field}"):
            AdapterConfig(**{field: bad})
    with pytest.raises(ConfigError, match="distill.adapter.lora_rank"):
        config_from_dict(AdapterConfig, {"lora_rank": 8}, "distill.adapter")
    assert AdapterConfig(target_modules=["q_proj", "v_proj"]).target_modules == ["q_proj", "v_proj"]


@pytest.mark.parametrize("arch", ARCHS)
def test_targets_are_the_language_model_projections_only(arch):
    model, _ = build_tiny(arch)
    targets = find_lora_targets(model)
    layers = model.config.text_config.num_hidden_layers
    assert len(targets) == len(PROJECTIONS) * layers
    assert all(t.startswith("model.language_model.layers.") for t in targets)
    assert sorted({t.rsplit(".", 1)[1] for t in targets}) == sorted(PROJECTIONS)
    assert "lm_head" not in targets
    vision_linears = [
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith(VISION)
    ]
    assert vision_linears and not set(vision_linears) & set(targets)


def test_only_lora_weights_train_and_the_vision_side_is_untouched(trained):
    peft_model = trained["peft"]
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    lora = lora_module_names(peft_model)
    inner = {name.removeprefix("base_model.model.") for name in lora}
    assert inner == set(find_lora_targets(peft_model.get_base_model()))
    vision = [(n, p) for n, p in peft_model.named_parameters() if any(v in n for v in VISION)]
    assert vision and not any(p.requires_grad for _, p in vision)
    assert not any(any(v in n for v in VISION) for n in inner)
    assert peft_model.peft_config["default"].bias == "none"


def test_adapter_off_is_the_base_model_exactly(trained):
    assert torch.equal(trained["at_init"], trained["base"])  # B = 0 at init
    assert not torch.equal(trained["after"], trained["base"])  # one step moves the student
    assert torch.equal(trained["disabled"], trained["base"])  # disable_adapter gives the base back


def test_teacher_logits_are_base_logits_and_modes_are_restored(trained):
    peft_model, batch = trained["peft"], trained["batch"]
    peft_model.train()
    inner = peft_model.get_base_model().model  # LlavaModel, Qwen2VLModel, InternVLModel
    frozen_part = next(m for n, m in inner.named_children() if n in ("vision_tower", "visual"))
    frozen_part.eval()  # a mixed state: trainer in train mode, vision tower kept in eval
    modes = {name: m.training for name, m in peft_model.named_modules()}
    logits = teacher_logits(peft_model, **batch)
    assert torch.equal(logits, trained["base"])
    assert not logits.requires_grad
    assert {name: m.training for name, m in peft_model.named_modules()} == modes
    assert peft_model.training and not frozen_part.training
    with torch.no_grad():  # the adapter is back on afterwards
        assert torch.equal(peft_model.eval()(**batch).logits, trained["after"])


def test_saved_adapter_reloads_with_identical_logits(trained):
    folder = trained["folder"]
    assert (folder / "adapter_model.safetensors").is_file()
    saved = json.loads((folder / "adapter_config.json").read_text())
    assert saved["r"] == 4 and saved["lora_alpha"] == 8 and saved["bias"] == "none"
    # written in a fixed order, so the same adapter has the same bytes in every process (DVC hash)
    assert saved["target_modules"] == sorted(saved["target_modules"]) and len(saved["target_modules"]) > 1
    base, _ = build_tiny(trained["arch"])
    reloaded = load_adapter(base, folder).eval()
    assert torch.equal(_logits(reloaded, trained["batch"]), trained["after"])
    assert not any(p.requires_grad for p in reloaded.parameters())


def test_merged_model_matches_the_adapter_and_has_no_lora_left(trained):
    base, _ = build_tiny(trained["arch"])
    merged = merge_adapter(load_adapter(base, trained["folder"]))
    assert type(merged) is type(base)
    assert lora_module_names(merged) == []
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert torch.allclose(_logits(merged.eval(), trained["batch"]), trained["after"], atol=1e-5)


def test_explicit_targets_are_used_as_given():
    model, _ = build_tiny("llava")
    peft_model = attach_adapter(model, AdapterConfig(lora_r=2, target_modules=["q_proj", "v_proj"]))
    names = lora_module_names(peft_model)
    assert names and all(n.endswith(("q_proj", "v_proj")) for n in names)
    # plain suffixes also hit the CLIP tower's q_proj / v_proj: that is why "auto" uses full names
    assert any("vision_tower" in n for n in names)
