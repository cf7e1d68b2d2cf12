"""Benchmarks of the seed pipeline: decoding, purification, memory, target storage, scaling, overhead.

``make bench`` (``python -m bench.run``) runs every section once and writes ``BENCHMARKS.md`` and
``reports/bench.json``. The pure helpers (FLOP counts, exponent fit, truncation KL) are in
`bench.metrics`; each section is one module with one ``run_*`` function.
"""
