"""``make bench``: run every benchmark section once; write BENCHMARKS.md and reports/bench.json.

    python -m bench.run                                   # CPU, float32, full sizes (make bench)
    python -m bench.run --device cuda --dtype bfloat16 --quick \\
        --json reports/bench-cuda.json --markdown reports/bench-cuda.md   # one GPU, < 10 minutes
    python -m bench.run --only decode,purify --threads 1  # some sections
    python -m bench.run --device cuda --dtype bfloat16 --shape llava-1.5-7b   # the 7B shape (bench/scale7b.py)
    python -m bench.run --shape llava-1.5-7b --only purify,distill --gradient-checkpointing   # its distill memory

Every section is seeded and uses the default model and data where they exist (see `bench.common`).
A section that fails is recorded with its error and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, Runtime, environment

SECTIONS = ("decode", "purify", "memory", "targets", "scaling", "overhead", "scaleout")

# (section, key, comparison, threshold): the acceptance checks of the benchmarks.
CHECKS = (
    ("decode", "seed_merged_vs_base", ">=", 0.95),
    ("decode", "seed_merged_vs_vcd", ">=", 1.8),
    ("purify", "batched_vs_naive", ">=", 3.0),
    ("memory", "adapter_teacher_vs_separate_teacher", "<=", 0.6),
    ("targets", "sparse_vs_dense_bytes", "<=", 0.02),
    ("targets", "truncation_kl_nats", "<=", 1e-3),
    ("targets", "sparse_vs_dense_bytes_32000", "<=", 0.02),
    ("targets", "truncation_kl_nats_32000", "<=", 1e-3),
    ("scaleout", "two_process_targets_identical", "==", True),
)


def acceptance(results: dict[str, Any], checks: tuple = CHECKS) -> list[dict[str, Any]]:
    """One row per check: value, threshold and pass (None when the value is missing)."""
    rows = []
    for section, key, op, threshold in checks:
        value = (results.get(section) or {}).get(key)
        if value is None:
            ok = None
        elif op == ">=":
            ok = value >= threshold
        elif op == "<=":
            ok = value <= threshold
        else:
            ok = value == threshold
        rows.append(
            {"check": f"{section}.{key}", "op": op, "threshold": threshold, "value": value, "pass": ok}
        )
    return rows


def section_runner(name: str, rt: Runtime, threads: int) -> Callable[[], dict[str, Any]]:
    if name == "decode":
        from bench.decoding import run_decode

        return lambda: run_decode(rt)
    if name == "purify":
        from bench.purify_throughput import run_purify

        return lambda: run_purify(rt)
    if name == "memory":
        from bench.memory import run_memory

        return lambda: run_memory(rt, threads)
    if name == "targets":
        from bench.storage import run_storage

        return lambda: run_storage(rt)
    if name == "scaling":
        from bench.scaling import run_scaling

        return lambda: run_scaling(rt)
    if name == "overhead":
        from bench.overhead import run_overhead

        return lambda: run_overhead(rt, threads)
    from bench.scaleout import run_scaleout

    return lambda: run_scaleout(rt)


def command_line(argv: list[str]) -> str:
    return " ".join(["python -m bench.run", *argv])


def run_shape_bench(args: argparse.Namespace, rt: Runtime, only: list[str], command: str) -> int:
    """``--shape``: `bench.scale7b.run_shape`; JSON to ``--json`` (default reports/bench-<cpu|cuda>-7b.json)."""
    from bench.scale7b import run_shape
    from bench.shape_report import section
    from seed.files.atomic import write_atomic

    kind = "cuda" if rt.cuda else "cpu"
    json_path = args.json or ROOT / "reports" / f"bench-{kind}-{args.shape.rsplit('-', 1)[-1]}.json"
    try:
        results, failed = run_shape(
            rt,
            args.shape,
            json_path,
            only,
            command=command,
            gradient_checkpointing=args.gradient_checkpointing,
        )
    finally:
        if args.scratch is None:
            shutil.rmtree(rt.scratch, ignore_errors=True)
    if args.markdown:
        write_atomic(args.markdown, section(results, json_path).encode())
    print(f"bench: wrote {json_path}" + (f" and {args.markdown}" if args.markdown else ""))
    for row in results.get("acceptance", []):
        print(f"  {row['check']} {row['op']} {row['threshold']}: {row['value']} -> {row['pass']}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (one GPU run in < 10 minutes)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated subset of {','.join(SECTIONS)} (with --shape: of its sections)",
    )
    parser.add_argument(
        "--shape",
        default=None,
        help="a published shape of bench/shapes/ (llava-1.5-7b): its own sections, 2-layer slice on a CPU",
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--shape: distill.gradient_checkpointing for every distillation mode (default: params.yaml)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="default reports/bench.json (--shape: see scale7b)"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="default BENCHMARKS.md (--shape: none)")
    parser.add_argument(
        "--scratch", type=Path, default=None, help="work folder to keep (default: a temporary one)"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.shape:
        from bench.scale7b import SECTIONS as known
    else:
        known = SECTIONS
        if args.gradient_checkpointing is not None:
            parser.error("--gradient-checkpointing needs --shape")
    only = [s.strip() for s in (args.only or ",".join(known)).split(",") if s.strip()]
    unknown = sorted(set(only) - set(known))
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; sections: {', '.join(known)}")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch

    from bench.report import render
    from seed.files.atomic import write_atomic, write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="seed-bench-"))
    rt = Runtime(device=args.device, dtype=args.dtype, quick=args.quick, scratch=scratch)
    if args.shape:
        return run_shape_bench(args, rt, only, command_line(argv))
    args.json = args.json or ROOT / "reports" / "bench.json"
    args.markdown = args.markdown or ROOT / "BENCHMARKS.md"
    results: dict[str, Any] = {"environment": environment(rt), "command": command_line(argv)}
    seconds: dict[str, float] = {}
    failed = []
    try:
        for name in SECTIONS:
            if name not in only:
                continue
            print(f"bench: {name} ...", flush=True)
            start = time.perf_counter()
            try:
                results[name] = section_runner(name, rt, args.threads)()
            except Exception as exc:  # record it and go on with the other sections
                failed.append(name)
                results[name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()[-4000:],
                }
                print(f"bench: {name} failed: {exc}", file=sys.stderr, flush=True)
            seconds[name] = round(time.perf_counter() - start, 1)
            print(f"bench: {name} done in {seconds[name]} s", flush=True)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    results["seconds"] = seconds
    results["acceptance"] = acceptance(results)
    write_json(args.json, results)
    write_atomic(args.markdown, render(results, args.json).encode())
    print(f"bench: wrote {args.json} and {args.markdown}")
    for row in results["acceptance"]:
        print(f"  {row['check']} {row['op']} {row['threshold']}: {row['value']} -> {row['pass']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
