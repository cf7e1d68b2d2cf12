"""seed: Self-Evolving Distillation (SEED) against hallucination in vision-language models.

The package, from the bottom layer up. A module imports only from its own layer or the layers
below it; `make test` checks this with import-linter (the contracts are in pyproject.toml).

```
 seed.errors     the one exception type that ends a command in one line (ConfigError)
 seed.params     reading a params.yaml section into a stage's config dataclass
 seed.core       pure tensor functions: noise (Isolate), identify, purify (Purge), losses (Distil)
 seed.files      on-disk formats: atomic writes, input checks, conversations, the unlabelled samples,
                 content hashes, targets and their shards, checkpoints, the base-model and adapter cards
 seed.model      a transformers VLM at work: loading and processors, decoding and VCD, the teacher
                 pass, the LoRA adapter, batches, the distillation training loop
 seed.base       the embedded model, its vision stage 0, tiny configs of the real architectures
 seed.eval       benchmark rules and metrics (POPE, MME, CHAIR, bootstrap), their runner, the
 seed.world      base-model probes and the results report; the embedded world (`seed data synth`);
 seed.validate   great-expectations checks of a world or of the official benchmark files
 seed.mlops      the only modules that import MLflow: tracking, registry, serving
 seed.stages     one module per stage (validate, pretrain, purify, distill, evolve, evaluate) and
                 the functions that run every stage for DVC
 seed.controls   the evidence controls
 seed.cli        the `seed` command; `seed run` and `seed serve` come from flows as plugins
```

`flows/` (Prefect) sits above all of it; `seed` never imports `flows` or Prefect.
"""

import warnings

# peft reads `model.is_gradient_checkpointing` whenever it wraps a model, and transformers 5 warns
# that the property is deprecated on every read. The warning is about peft's code, not ours, and
# would otherwise be printed once per loaded adapter.
warnings.filterwarnings(
    "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
)
