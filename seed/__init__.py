"""seed: Self-Evolving Distillation (SEED) against hallucination in vision-language models.

The package, from the bottom layer up (lower layers never import higher ones):

```
 seed.core       pure tensor functions: noise (Isolate), identify, purify (Purge), losses (Distil)
 seed.files      on-disk formats: atomic writes, input checks, conversations, the unlabelled samples,
                 content hashes, targets and their shards, checkpoints
 seed.world      the embedded world: scenes, pixels, words, POPE/MME/CHAIR files (`seed data synth`)
 seed.validate   great-expectations checks of a world or of the official benchmark files
 seed.eval       benchmark rules and metrics (POPE, MME, CHAIR, bootstrap), their files and runner,
                 and the base-model probes
 seed.model      a transformers VLM at work: loading, decoding and VCD, the teacher pass, the LoRA
                 adapter, batches, the distillation training loop
 seed.base       the embedded model, its vision stage 0, tiny configs of the real architectures
 seed.stages     one module per stage (validate, pretrain, purify, distill, evaluate, evolve) and
                 the functions that run every stage for DVC
 seed/*.py       controls (the evidence controls); cli.py for the `seed` command
 seed.mlops      the only modules that import MLflow: tracking, registry, serving
```

`flows/` (Prefect) sits above all of it; `seed` never imports Prefect.
"""

import warnings

# peft reads `model.is_gradient_checkpointing` whenever it wraps a model, and transformers 5 warns
# that the property is deprecated on every read. The warning is about peft's code, not ours, and
# would otherwise be printed once per loaded adapter.
warnings.filterwarnings(
    "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
)
