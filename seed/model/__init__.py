"""A transformers vision-language model at work: loading, decoding, the adapter, batches, processes.

- `generate`: loading a checkpoint (path or hub id) and batched greedy or sampled decoding.
- `vcd`: the decoding loop with one or two KV caches (regular decoding and VCD) and its cost.
- `teacher`: the teacher pass: clean and noised copies of a batch in one forward, purified targets.
- `adapter`: the LoRA adapter whose off-state is the teacher (`disable_adapter`).
- `trainer`: the distillation training loop (offline or online targets, data-parallel, resumable).
- `batching`: (image, prompt, response) batches with labels on the response tokens only.
- `parallel`: the process group for data-parallel purify and distill (torchrun / accelerate).
"""
