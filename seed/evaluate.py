"""The names `bench.seed_select` imports from the former stage module; the stage is `seed.stages.evaluate`.

Import them from `seed.stages.evaluate`; this module goes once nothing imports it.
"""

from seed.stages.evaluate import EvaluateConfig, MethodSpec, evaluate_methods

__all__ = ["EvaluateConfig", "MethodSpec", "evaluate_methods"]
