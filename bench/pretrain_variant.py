"""Pretraining variants that are experiments, not options yet: `seed pretrain` with one change.

    python bench/pretrain_variant.py --degraded-max-step 700 -- --data data --out /tmp/v4f ...

``--degraded-max-step S``: the degraded images of the LLaVA stage are noised at a uniform step in
[0, S) instead of [0, 999]. The question it asks: does training on heavily noised images with their
text unchanged teach the model to read objects out of the noise, so that the noised view SEED uses
(step 900) still holds them? Everything after ``--`` is passed to `seed pretrain` as it is.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degraded-max-step", type=int, required=True)
    own, _, rest = " ".join(sys.argv[1:]).partition(" -- ")
    args = parser.parse_args(own.split())

    import torch

    from seed.cli import main as seed_main
    from seed.core.noise import DEFAULT_NUM_STEPS, add_diffusion_noise
    from seed.stages import pretrain

    if not 0 < args.degraded_max_step <= DEFAULT_NUM_STEPS:
        raise SystemExit(f"--degraded-max-step must be in 1..{DEFAULT_NUM_STEPS}")

    def degrade(pixels, rate, generator):  # pretrain.degrade with the step range capped
        chosen = (torch.rand(pixels.shape[0], generator=generator) < rate).nonzero().flatten().tolist()
        if not chosen:
            return pixels
        out = pixels.clone()
        for i in chosen:
            step = int(torch.randint(args.degraded_max_step, (1,), generator=generator))
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            out[i : i + 1] = add_diffusion_noise(pixels[i : i + 1], step, seeds=[seed])
        return out

    pretrain.degrade = degrade
    return seed_main(["pretrain", *rest.split()])


if __name__ == "__main__":
    raise SystemExit(main())
