"""The SEED adapter's model card: Hugging Face format, the method, the settings, hashes and results."""

from __future__ import annotations

import json

from huggingface_hub import ModelCard

from seed.files.adapter_card import render_adapter_card, write_adapter_card

SUMMARY = {
    "stage": "distill",
    "model": "llava-hf/llava-1.5-7b-hf",
    "targets": "artifacts/targets",
    "loss": "reverse_kl",
    "steps": 10,
    "samples": 40,
    "tokens_seen": 120,
    "loss_first": 0.5,
    "loss_last": 0.25,
    "config": {"lr": 0.0005, "adapter": {"lora_r": 16}},
    "targets_meta": {"model_hash": "m" * 64, "data_hash": "d" * 64, "config": {"noise_step": 900}},
    "targets_hash": "t" * 64,
}
METRICS = {
    "protocol": "greedy",
    "pope": {
        "base": {"adversarial": {"f1": 0.741, "f1_ci": [0.726, 0.757]}},
        "seed": {
            "adversarial": {"f1": 0.748, "f1_ci": [0.732, 0.765]},
            "counterfactual": {"f1": 0.616, "f1_ci": [0.595, 0.635]},
        },
    },
    "mme": {"base": {"total": 410.0}, "seed": {"total": 423.3}},
    "chair": {"base": {"chair_s": 0.61}, "seed": {"chair_s": 0.507}},
}


def test_card_before_evaluation_states_the_method_settings_and_hashes(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(render_adapter_card(SUMMARY, "w" * 64))
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["library_name"] == "peft" and data["pipeline_tag"] == "image-text-to-text"
    assert data["base_model"] == "llava-hf/llava-1.5-7b-hf" and "seed" in data["tags"]
    assert data["seed_adapter"] == {
        "weights_sha256": "w" * 64,
        "base_model_sha256": "m" * 64,
        "data_sha256": "d" * 64,
        "targets_sha256": "t" * 64,
    }
    assert "model-index" not in data and "Not evaluated yet" in card.text
    assert "Self-Evolving" in card.text and '"noise_step": 900' in card.text and '"lora_r": 16' in card.text
    assert "[More Information Needed]" not in card.text


def test_card_after_evaluation_carries_the_results_as_a_model_index(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(render_adapter_card(SUMMARY, "w" * 64, METRICS))
    card = ModelCard.load(path)
    results = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {
        ("POPE adversarial", "f1"): 0.748,
        ("POPE counterfactual", "f1"): 0.616,
        ("MME existence, count, position, color", "score"): 423.3,
        ("CHAIR captions", "chair_s"): 0.507,
    }
    assert (
        "| base model + this adapter | - | - | 0.748 [0.732, 0.765] | 0.616 [0.595, 0.635] | 423.3 | 0.507 |"
        in card.text
    )


def test_write_reads_the_summary_and_hashes_the_weights(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    card = ModelCard.load(write_adapter_card(tmp_path, METRICS))
    import hashlib

    assert card.data.to_dict()["seed_adapter"]["weights_sha256"] == hashlib.sha256(b"weights").hexdigest()
