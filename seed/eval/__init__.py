"""Benchmark metrics, pure and framework-free: POPE, the MME hallucination subset and CHAIR.

Each module reads its benchmark's on-disk format (see docs/data-format.md), parses model answers
with the benchmark's official rule, and turns labels and predictions into numbers. Nothing here
imports torch or runs a model; generating the answers is another module's job.

- `seed.eval.pope`: POPE yes/no questions; accuracy, precision, recall, F1, yes-ratio.
- `seed.eval.mme`: MME existence / count / position / color; acc, acc+, score (max 200 each).
- `seed.eval.chair`: CHAIR_i and CHAIR_s on free captions, objects mapped through a synonym list.
- `seed.eval.bootstrap`: percentile bootstrap confidence intervals.

Beside the metrics, three modules of stage `evaluate` (the stage itself is `seed.stages.evaluate`):

- `seed.eval.benchmarks`: where the benchmark files are; every file read and checked up front.
- `seed.eval.runner`: the benchmarks run on one loaded model and one decoding method.
- `seed.eval.report`: the results table and the plots, from reports/metrics.json.
"""
