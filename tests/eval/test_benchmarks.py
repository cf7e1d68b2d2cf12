"""seed.eval.benchmarks: where the benchmarks are."""

from __future__ import annotations

from pathlib import Path

from seed.eval.benchmarks import benchmark_paths
from seed.stages.evaluate import EvaluateConfig


def test_paths_default_to_the_world_layout(tmp_path):
    (tmp_path / "world.json").write_text("{}")
    (tmp_path / "synonyms.txt").write_text("dog\n")
    (tmp_path / "chair").mkdir()
    (tmp_path / "chair" / "images.json").write_text("[]")
    paths = benchmark_paths(tmp_path, EvaluateConfig())
    assert paths.pope_dir == tmp_path / "pope" and paths.images_dir == tmp_path / "images" / "eval"
    assert paths.mme_dir == tmp_path / "mme" and paths.instances_file == tmp_path / "annotations.json"
    assert paths.synonyms_file == tmp_path / "synonyms.txt"
    assert paths.chair_images_file == tmp_path / "chair" / "images.json"
    assert paths.world_dir == tmp_path
    real = benchmark_paths(
        tmp_path, EvaluateConfig(pope_dir="/p", images_dir="/val2014", instances_file="/i.json")
    )
    assert (real.pope_dir, real.images_dir, real.instances_file) == (
        Path("/p"),
        Path("/val2014"),
        Path("/i.json"),
    )
    assert real.chair_images_file is None and real.world_dir is None  # no world diagnostics on real data
