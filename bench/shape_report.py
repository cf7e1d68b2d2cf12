"""The BENCHMARKS.md section of a ``--shape`` run, rendered from its JSON (`bench.scale7b`).

    python -m bench.shape_report reports/bench-cuda-7b.json --update BENCHMARKS.md

``--update`` replaces the text between the section's markers (or appends the section); without it
the section is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.report import num, table


def gib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**30:.1f} GiB"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench-shape:{name} -->", f"<!-- /bench-shape:{name} -->"


def _failed(part: dict[str, Any] | None) -> str | None:
    if part is None:
        return "not run"
    return f"failed: `{part['error'][:300]}`" if "error" in part else None


def acceptance_lines(r: dict[str, Any]) -> list[str]:
    rows = []
    for row in r.get("acceptance", []):
        ok = {True: "yes", False: "**no**", None: "-"}[row["pass"]]
        rows.append([f"`{row['check']}`", f"{row['op']} {num(row['threshold'])}", num(row["value"]), ok])
    return table(["check", "target", "measured", "pass"], rows) + [""]


def rate_lines(r: dict[str, Any]) -> list[str]:
    out = []
    peak, gen, pur = r.get("peak") or {}, r.get("generate") or {}, r.get("purify") or {}
    if "flops_per_second" in peak:
        out.append(
            f"Measured dense matmul peak ({r['environment']['dtype']}, {'x'.join(map(str, peak['shape']))}): "
            f"**{peak['flops_per_second'] / 1e12:,.0f} TFLOP/s**."
        )
    if "tokens_per_second" in gen:
        out.append(
            f"Response generation (`seed.model.vcd.decode`, KV cache, batch {gen['batch']}, {gen['prompt_tokens']} prompt "
            f"tokens with the image, {gen['new_tokens']} new tokens each, end-of-sequence ignored): "
            f"**{num(gen['tokens_per_second'])} tokens/s**, {num(gen['samples_per_second'])} samples/s."
        )
    elif gen:
        out.append(f"Response generation {_failed(gen)}.")
    if "samples_per_second" in pur:
        out.append(
            f"Purify teacher pass (`seed.model.teacher.teacher_targets`: {pur['batch']} samples, clean + noised as one "
            f"forward of {pur['forward_batch']} x {pur['seq']} tokens, {pur['target_tokens']} target tokens): "
            f"median {num(pur['seconds']['median'])} s, **{num(pur['samples_per_second'])} samples/s**, "
            f"{pur['achieved_flops_per_second'] / 1e12:,.0f} TFLOP/s = **{num(pur['fraction_of_peak'])}** of the "
            f"measured peak ({pur['flop_count']})."
        )
    elif pur:
        out.append(f"Purify teacher pass {_failed(pur)}.")
    return [line for text in out for line in (text, "")]


def decode_lines(d: dict[str, Any] | None) -> list[str]:
    problem = _failed(d)
    if problem:
        return [f"Decoding {problem}.", ""]
    base = d["methods"]["base"]["tokens_per_second"]["median"]
    rows = [
        [
            name,
            num(m["tokens_per_second"]["median"]),
            f"{num(m['tokens_per_second']['min'])} - {num(m['tokens_per_second']['max'])}",
            num(m["forwards_per_token"]),
            num(m["tokens_per_second"]["median"] / base),
        ]
        for name, m in d["methods"].items()
    ]
    v = d["vcd"]
    return [
        f"Decoding: {d['batch']} prompts x {d['new_tokens']} new tokens through `seed.model.vcd.decode` (median of the "
        f"timed repeats; VCD cd_alpha {v['cd_alpha']}, cd_beta {v['cd_beta']}, noise step {v['noise_step']}, "
        "noising timed). The methods take turns in every round; unmerged SEED is a copy of the weights with "
        "a LoRA adapter (PEFT), merged SEED a copy of that, merged.",
        "",
        *table(["method", "tokens/s (median)", "min - max", "forwards/token", "vs base"], rows),
        "",
    ]


def distill_lines(d: dict[str, Any] | None) -> list[str]:
    problem = _failed(d)
    if problem:
        return [f"Distillation {problem}.", ""]
    checkpointed = d.get("gradient_checkpointing", False)
    setting = "with" if checkpointed else "without"
    out = [
        f"**Distillation {setting} gradient checkpointing** (`distill.gradient_checkpointing: {str(checkpointed).lower()}`, every mode below).",
        "",
    ]
    if "offline_seconds_per_step" in d:
        without = d.get("offline_seconds_per_step_without_checkpointing")
        out += [
            f"Distillation step (`seed.model.trainer.train_adapter`, offline targets, batch {d['batch']}, mean of "
            f"{d['steps_timed']} steps after a warm-up): **{num(d['offline_seconds_per_step'])} s/step**"
            + (
                f" ({num(without)} s/step without checkpointing in the same process: "
                f"**x{num(d['checkpointing_step_time_ratio'])}**)"
                if without is not None
                else ""
            )
            + (
                f"; online (adapter-off teacher pass inside the step): {num(d['online_seconds_per_step'])} s/step."
                if "online_seconds_per_step" in d
                else "."
            ),
            "",
        ]
    rows = []
    for row in d["memory"]:
        if row["oom"]:
            rows.append([row["mode"], row["batch"], "out of memory", "-"])
        else:
            rows.append([row["mode"], row["batch"], gib(row["peak_bytes"]), num(row["seconds_per_step"])])
    out += [
        f"Peak memory of online distillation ({d['memory_measure']}; each run starts from the weights alone): "
        "`adapter_teacher` is `train_adapter` (teacher = the same weights, adapter disabled); "
        "`separate_teacher_lora` the same LoRA training with a separate teacher copy; "
        "`separate_teacher_full` a separate teacher and full fine-tuning with AdamW on bfloat16 weights "
        "(`bench.memory.train_separate`).",
        "",
        *table(["mode", "batch", "peak", "s/step"], rows),
        "",
        "Adapter-off teacher / separate teacher, by batch: "
        + ", ".join(f"{b}: {num(v)}" for b, v in d["adapter_teacher_vs_separate_teacher_by_batch"].items())
        + ".",
        "",
    ]
    return out


def projection_lines(p: dict[str, Any] | None) -> list[str]:
    if not p:
        return ["Round projection: a rate is missing.", ""]
    rt = p["rates"]
    rows = [
        [
            f"{x['samples']:,}",
            hours(x["generate_seconds"]),
            hours(x["teacher_seconds"]),
            f"{hours(x['distill_seconds'])} ({x['distill_steps']:,} steps)",
            f"**{hours(x['total_seconds'])}**",
        ]
        for x in p["rounds"]
    ]
    return [
        "Projected wall time of one SEED round on this GPU (stage purify: answer + teacher pass; stage distill: "
        f"{rt['epochs']} epoch, offline targets; loading, evaluation and I/O not included), from the rates above: "
        f"{num(rt['generate_samples_per_second'])} samples/s generated, {num(rt['teacher_samples_per_second'])} "
        f"samples/s through the teacher pass, {num(rt['distill_seconds_per_step'])} s per distillation step of "
        f"{rt['distill_batch']} samples.",
        "",
        *table(["samples", "generate", "teacher pass", "distill", "round"], rows),
        "",
    ]


def section(r: dict[str, Any], json_path: Path) -> str:
    """The markdown section (with its markers) of a `bench.scale7b.run_shape` result."""
    env, model = r["environment"], r.get("model") or {}
    name = r.get("shape_name", "shape")
    start, end = markers(name)
    try:
        where = Path(json_path).resolve().relative_to(ROOT)
    except ValueError:
        where = Path(json_path)
    sliced = f" (its {model.get('sliced_to_layers')}-layer slice)" if model.get("sliced_to_layers") else ""
    lines = [
        start,
        f"## {name}{sliced} on {env['device_name']}, {env['dtype']}",
        "",
        f"`{r.get('command', '')}` on {env['date']}, torch {env['torch']}, transformers {env['transformers']}, "
        f"commit {(env.get('git_commit') or '?')[:12]}; every number is in `{where}`. Section times (s): "
        + ", ".join(f"{k} {v}" for k, v in r.get("seconds", {}).items())
        + ".",
        "",
    ]
    for rerun in r.get("reruns", []):
        lines += [
            f"Rerun of {', '.join(rerun['sections'])}: `{rerun['command']}` on {rerun['date']} ({rerun['code']}); "
            "section times (s): " + ", ".join(f"{k} {v}" for k, v in rerun["seconds"].items()) + ". "
            f"Kept from the first run: {rerun['kept_from_the_first_run']}.",
            "",
        ]
    if "parameters" in model:
        lines += [
            f"Model: `LlavaForConditionalGeneration` built in-process from `bench/shapes/{name}.json` "
            f"({model['source'].split(' ')[0]}), random weights: {model['vision_layers']} vision layers, "
            f"{model['text_layers']} decoder layers of width {model['text_hidden']}, vocabulary {model['vocab_size']:,}, "
            f"{model['image_tokens']} image tokens; **{model['parameters'] / 1e9:.2f} B parameters**, "
            f"{gib(model['weight_bytes'])} of weights, built on the device in {num(model['build_seconds'])} s. "
            "Samples are synthetic (random-noise images, responses of one-token words).",
            "",
        ]
    else:
        lines += [f"Model {_failed(model)}.", ""]
    lines += acceptance_lines(r)
    lines += rate_lines(r)
    lines += decode_lines(r.get("decode"))
    lines += distill_lines(r.get("distill"))
    if "distill_without_checkpointing" in r:
        lines += distill_lines(r["distill_without_checkpointing"])
    lines += projection_lines(r.get("projection"))
    lines.append(end)
    return "\n".join(lines) + "\n"


def update(markdown: str, text: str, name: str) -> str:
    """``markdown`` with the section between ``name``'s markers replaced by ``text`` (appended if absent)."""
    start, end = markers(name)
    if start in markdown and end in markdown:
        head, rest = markdown.split(start, 1)
        return head + text.rstrip("\n") + rest.split(end, 1)[1]
    return markdown.rstrip("\n") + "\n\n" + text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path)
    parser.add_argument("--update", type=Path, default=None, help="markdown file whose section to replace")
    args = parser.parse_args(argv)
    results = json.loads(args.json.read_text())
    text = section(results, args.json)
    if args.update:
        args.update.write_text(update(args.update.read_text(), text, results.get("shape_name", "shape")))
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
