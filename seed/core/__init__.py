"""The method core: pure tensor functions of SEED, with no model, file or framework in them.

- `noise`: VCD's diffusion noise on a pixel tensor, seeded per sample (Isolate).
- `identify`: per-token confidence of the teacher and the share of flagged tokens (Identify).
- `purify`: the plausible set, the confidence-adaptive contrast and the sparse targets (Purify).
- `lm_loss`: the base model's next-token loss with each answer turn weighed equally (pretraining).
- `losses`: reverse and forward KL of the student to the purified targets (Distil back).
"""
