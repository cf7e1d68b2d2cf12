"""BENCHMARKS.md from the results of `bench.run`: the same numbers as reports/bench.json, as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import ROOT

GPU_COMMAND = (
    "python -m bench.run --device cuda --dtype bfloat16 --quick "
    "--json reports/bench-cuda.json --markdown reports/bench-cuda.md"
)


def num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (``-`` for None)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e6:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _problem(section: dict[str, Any] | None) -> list[str] | None:
    if section is None:
        return ["Not run (see `--only`).", ""]
    if "error" in section:
        return [f"**Failed**: `{section['error']}`", ""]
    return None


def decode_lines(d: dict[str, Any]) -> list[str]:
    w = d["workload"]
    out = [
        f'{w["batch"]} caption prompts ("{w["prompt"]}", {w["prompt_tokens"]} prompt tokens with the image) '
        f"decoded greedily to exactly {w['new_tokens']} new tokens each (end-of-sequence ignored), through "
        f"`seed.model.vcd.decode`; {w['repeats']} timed repeats per method after a warm-up round, methods "
        f"interleaved. VCD: cd_alpha {w['vcd']['cd_alpha']}, cd_beta {w['vcd']['cd_beta']}, noise step "
        f"{w['vcd']['noise_step']} (noising timed).",
        "",
    ]
    base = d["methods"]["base"]["tokens_per_second"]["median"]
    rows = []
    for name, m in d["methods"].items():
        tps = m["tokens_per_second"]
        rows.append(
            [
                name,
                num(tps["median"]),
                f"{num(tps['min'])} - {num(tps['max'])}",
                num(m["forwards_per_token"]),
                num(tps["median"] / base),
                num(d["paired_median_vs_base"][name]),
            ]
        )
    out += table(
        [
            "method",
            "tokens/s (median)",
            "min - max",
            "forwards/token",
            "vs base",
            "vs base, per round (median)",
        ],
        rows,
    )
    out += [
        "",
        f"SEED merged / base: **{num(d['seed_merged_vs_base'])}**; SEED merged / VCD: "
        f"**{num(d['seed_merged_vs_vcd'])}**; SEED unmerged / base: {num(d['seed_unmerged_vs_base'])}. "
        f"Merged and unmerged SEED chose the same token at {num(100 * d['merged_unmerged_token_agreement'])}% "
        "of positions.",
        "",
    ]
    return out


def purify_lines(p: dict[str, Any]) -> list[str]:
    w = p["workload"]
    out = [
        f"{w['samples']} samples of the unlabelled split ({w['teacher_tokens']:,} teacher tokens, clean + noised; "
        f"{w['target_tokens']:,} target tokens), {w['repeats']} timed repeats after a warm-up, {w['dtype']}. "
        f"Batched: {w['batch_size']} samples per step, one forward of {w['forward_batch']} sequences "
        "(`seed.model.teacher.teacher_targets`). Naive: one sample at a time, a clean and a noised forward.",
        "",
    ]
    rows = []
    for way in ("batched", "naive"):
        rows.append(
            [
                way,
                num(p["seconds"][way]["median"]),
                num(p["teacher_tokens_per_second"][way]),
                num(p["target_tokens_per_second"][way]),
                num(p["achieved_flops_per_second"][way] / 1e9),
                num(p["fraction_of_peak"] if way == "batched" else p["naive_fraction_of_peak"]),
            ]
        )
    out += table(
        [
            "way",
            "seconds (median)",
            "teacher tokens/s",
            "target tokens/s",
            "achieved GFLOP/s",
            "fraction of peak",
        ],
        rows,
    )
    peaks = ", ".join(f"{k}: {num(v / 1e9)} GFLOP/s" for k, v in p["matmul_peak_flops_per_second"].items())
    same = p["same_targets"]
    out += [
        "",
        f"Batched / naive: **{num(p['batched_vs_naive'])}x**. Measured dense matmul peak ({w['dtype']}): {peaks}. "
        f"Batched pass: **{num(p['fraction_of_peak'])}** of the square-shape peak, "
        f"{num(p['fraction_of_model_shape_peak'])} of the model-shape peak. Both ways give the same targets "
        f"(indices equal: {num(same['indices_equal'])}, largest log-prob difference "
        f"{num(same['max_abs_log_prob_diff'])}).",
        "",
        f"FLOPs are counted, not sampled: {p['flop_count']}.",
        "",
    ]
    return out


def memory_lines(m: dict[str, Any]) -> list[str]:
    runs = m["runs"]
    a = runs["adapter"]
    out = [
        f"Model: untrained LLaVA of the default layout with a wider decoder ({', '.join(f'{k} {v}' for k, v in a['shape'].items())}): "
        f"**{a['parameters'] / 1e6:.1f} M parameters, {mib(a['weight_bytes'])} of weights**. "
        f"{a['steps']} steps of {a['batch']} samples, online targets, each mode in its own process; "
        f"peak = {a['measure']}.",
        "",
    ]
    rows = []
    for mode, r in runs.items():
        rows.append(
            [
                mode,
                mib(r["peak_bytes"]),
                mib(r["rss_after_imports_bytes"]) if r["measure"].startswith("ru_") else "-",
                mib(r.get("rss_after_model_bytes")) if r["measure"].startswith("ru_") else "-",
                num(r["trainable_parameters"]),
                num(r["train_seconds"]),
            ]
        )
    out += table(
        ["mode", "peak", "RSS after imports", "RSS after model", "trainable parameters", "train seconds"],
        rows,
    )
    out += [
        "",
        f"Adapter teacher / separate teacher + full fine-tuning: **{num(m['adapter_teacher_vs_separate_teacher'])}** "
        f"of the peak ({num(m['adapter_vs_separate_above_imports'])} counting only memory above the imports).",
        "",
    ]
    return out


def targets_lines(t: dict[str, Any]) -> list[str]:
    rows = []
    cases = [("(a) default model", t["default_model"]), ("(b) untrained, 32000 vocab", t["vocab_32000"])]
    if "padded_vocab" in t:
        cases.append(("(c) default model padded to 32000", t["padded_vocab"]))
    for label, r in cases:
        rows.append(
            [
                label,
                num(r["vocab"]),
                num(r["top_k"]),
                num(r["sparse_bytes_per_token"]),
                num(r["dense_bytes_per_token"]),
                num(r["sparse_vs_dense_bytes"]),
                f"{num(r['truncation_kl_nats']['mean'])} / {num(r['truncation_kl_nats']['max'])}",
                num(r["renormalised_topk_kl_nats"]["mean"]),
                num(r["support_size"]["mean"]),
                num(r["tail_mass"]["mean"]),
            ]
        )
    out = table(
        [
            "model",
            "vocab",
            "top_k",
            "sparse B/token",
            "dense fp16 B/token",
            "sparse / dense",
            "truncation KL mean / max (nats)",
            "top-k renormalised KL",
            "mean support",
            "mean tail mass",
        ],
        rows,
    )
    d = t["default_model"]
    out += ["", f"{num(d['tokens'])} recomputed target tokens per model (the same samples)."]
    stored = d.get("stored")
    if stored:
        out += [
            f"Stored shards of `artifacts/targets`: {num(stored['tokens'])} tokens, target tensors "
            f"{mib(stored['target_tensor_bytes'])} vs dense fp16 {mib(stored['dense_fp16_bytes'])} "
            f"(**{num(stored['sparse_vs_dense_bytes'])}**); whole shard files (offsets, per-token confidence and "
            f"response ids included) {num(stored['shard_files_vs_dense_bytes'])}.",
        ]
    out += [
        "",
        "Sparse bytes per token are `top_k * (4 + 2) + 4` (int32 id, float16 log-prob, float32 tail) whatever "
        "the model; dense is `2 * vocab`. Truncation KL is KL(P* || Q) from the full purified target to the "
        "stored one (kept tokens at their float16 probabilities, tail mass spread evenly over the other "
        "tokens, renormalised); the top-k renormalised KL is -log(1 - tail), the gap the distillation loss "
        "leaves as a constant. (b) is untrained: its logits are nearly flat, so almost every "
        "token passes the plausibility cut and the top k hold little of the mass, kept as the worst case for "
        "truncation. (c) is the default model with its embedding and head padded to 32000 tokens with zero "
        "rows: an emulation of a real vocabulary's unused tail (logit 0 for ids never seen in training), not a "
        "real 32000-token model; its logits on the real tokens equal the unpadded model's (checked).",
        "",
    ]
    c = t.get("padded_vocab")
    if c:
        out[-1:-1] = [
            "",
            f"Case (c) ({'trained' if c['trained'] else 'untrained stand-in'} model): padded tokens hold "
            f"{num(c['clean_softmax_mass_on_padded_tokens']['mean'])} of the clean softmax on average and "
            f"{num(c['padded_tokens_in_support']['mean'])} of them enter the plausible set per token. The "
            "acceptance rows `targets.sparse_vs_dense_bytes` and `targets.truncation_kl_nats` are case (c), the "
            "one where both are measured on one trained model at a real vocabulary size; (a) and (b) are the "
            "`*_default_vocab` and `*_32000` keys of reports/bench.json.",
        ]
    return out


def scaling_lines(s: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, m in s["models"].items():
        out += [
            f"**{name}** ({m['parameters'] / 1e6:.2f} M parameters, decoder {m['text_layers']} x {m['text_hidden']}): "
            f"purify exponent **{num(m['purify_exponent'])}**, distill exponent **{num(m['distill_exponent'])}** "
            "(seconds ~ N^b).",
            "",
        ]
        rows = [
            [
                num(p["samples"]),
                num(p["purify_seconds"]),
                num(p["distill_seconds"]),
                num(p["target_tokens"]),
                num(p["distill_steps"]),
            ]
            for p in m["points"]
        ]
        out += table(["samples N", "purify s", "distill s", "target tokens", "distill steps"], rows) + [""]
    by = s["parameter_exponents_per_size"]
    out += [
        "Growth with model size (two models: the slope between them, seconds ~ parameters^b) at N = "
        + ", ".join(str(n) for n in s["samples"])
        + f": purify {', '.join(num(v) for v in by['purify'])}; distill {', '.join(num(v) for v in by['distill'])}.",
        "",
    ]
    return out


def overhead_lines(o: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "note" in o:
        out += [o["note"], ""]
    if "direct" in o:
        d, f = o["direct"], o["flow"]
        rows = [[stage, num(d["stages"].get(stage)), num(f["stages"].get(stage))] for stage in d["stages"]]
        rows.append(["stages, sum", num(sum(d["stages"].values())), num(sum(f["stages"].values()))])
        rows.append(["process wall time", num(d["process_wall_seconds"]), num(f["process_wall_seconds"])])
        out += table(["seconds", "stage functions", "Prefect flow"], rows)
        out += [
            "",
            f"The flow process takes **{num(o['flow_minus_direct_seconds'])} s** longer than calling the stage "
            f"functions; inside the flow call, {num(o['flow_call_minus_stages_seconds'])} s go to Prefect (its "
            "temporary API server, task runs) and MLflow (run, params, metrics, artifacts, registry) rather than "
            f"to stages; importing Prefect, MLflow and the flow takes {num(f['flow_imports_seconds'])} s. "
            "Tiny-world settings: "
            + "; ".join(
                f"{k}: {', '.join(f'{a}={b}' for a, b in v.items())}" for k, v in o["settings"].items()
            )
            + ".",
            "",
        ]
    dvc = o.get("dvc", {})
    if "note" in dvc:
        out += [dvc["note"], ""]
    else:
        parts = []
        if "repo_dvc_status_seconds" in dvc:
            parts.append(f"`dvc status` in this repository {num(dvc['repo_dvc_status_seconds'])} s")
        parts.append(
            f"in a one-stage project, `dvc repro` with nothing to do {num(dvc['noop_repro_seconds'])} s "
            f"(first run {num(dvc['first_repro_seconds'])} s), `dvc status` {num(dvc['noop_status_seconds'])} s"
        )
        out += ["DVC: " + "; ".join(parts) + " (each a fresh `dvc` process).", ""]
    return out


def scaleout_lines(s: dict[str, Any]) -> list[str]:
    if s.get("two_process_targets_identical") is None:
        return [f"Not measured: {s.get('note', '')}", ""]
    return [
        f"`seed purify` on {s['samples']} samples ({s['shards']} shards) in 1 and in 2 processes "
        f"({s['device']}, {s['dtype']}): byte-identical targets: **{num(s['two_process_targets_identical'])}**"
        + (f" (differences: {', '.join(s['differences'])})" if s["differences"] else "")
        + f". Wall time 1 process {num(s['seconds']['1'])} s, 2 processes {num(s['seconds']['2'])} s "
        f"({num(s['two_vs_one_process_speed'])}x; {s['note']}).",
        "",
    ]


def render(results: dict[str, Any], json_path: Path) -> str:
    """The whole BENCHMARKS.md text."""
    env = results["environment"]
    try:
        where = json_path.resolve().relative_to(ROOT)
    except ValueError:
        where = json_path
    commit = (env["git_commit"] or "unknown")[:12] + (
        " (with uncommitted changes)" if env["git_dirty"] else ""
    )
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{results['command']}` on {env['date']}, commit {commit}: {env['device_name']} "
        f"({env['device']}, {env['dtype']}), {env['threads']} torch threads of {env['cpu_count']} CPUs, "
        f"torch {env['torch']}, transformers {env['transformers']}, Python {env['python']}"
        f"{', quick sizes' if env['quick'] else ''}. The same numbers are in `{where}`. Section times (s): "
        + ", ".join(f"{k} {v}" for k, v in results.get("seconds", {}).items())
        + ".",
        "",
        "## How to rerun",
        "",
        "```bash",
        "make bench                                  # every section, CPU, float32 (writes this file and reports/bench.json)",
        GPU_COMMAND + "   # one GPU, about 10 minutes",
        ".venv/bin/python -m bench.run --only decode,purify --threads 1   # some sections (the files then hold only those)",
        "```",
        "",
        "Every section is seeded and runs on the default base model (`artifacts/base-model`), its adapter and "
        "targets and the world in `data/` where they exist; missing ones are replaced by untrained stand-ins "
        "built on the fly (never trained here). Timings on a shared machine vary: rerun on a quiet one.",
        "",
        "## Acceptance",
        "",
    ]
    rows = [
        [
            f"`{r['check']}`",
            f"{r['op']} {num(r['threshold'])}",
            num(r["value"]),
            {True: "yes", False: "**no**", None: "-"}[r["pass"]],
        ]
        for r in results["acceptance"]
    ]
    lines += table(["check", "target", "measured", "pass"], rows) + [""]
    sections = (
        ("Decoding", "decode", decode_lines),
        ("Purification throughput", "purify", purify_lines),
        ("Memory of distillation", "memory", memory_lines),
        ("Target storage", "targets", targets_lines),
        ("Scaling", "scaling", scaling_lines),
        ("Pipeline overhead", "overhead", overhead_lines),
        ("Scale-out of purify", "scaleout", scaleout_lines),
    )
    for title, key, fn in sections:
        lines += [f"## {title}", ""]
        section = results.get(key)
        lines += _problem(section) or fn(section)
    return "\n".join(lines).rstrip() + "\n"
