"""The `seed` command: one subcommand per stage of the pipeline, plus scoring and validation tools.

Every subcommand reads its defaults from its own section of ``params.yaml`` (``--params`` to choose
another file); flags override the file. Bad input ends in one ``error: ...`` line naming the file and
field, and exit status 2, never a traceback. Anything else that escapes a subcommand is a bug: its
traceback is printed with a last ``error: unexpected ...`` line that says so, and exit status 1.
"""

from __future__ import annotations

import os
import sys

from seed.cli.parser import build_parser
from seed.errors import SeedError

DELEGATED = {
    "validate": ("seed.validate", "main_validate"),
    "pope-score": ("seed.eval.pope", "main_pope_score"),
    "answer": ("seed.mlops.serving", "main_answer"),
}
# Commands another installed package adds, through the entry point group below (pyproject.toml):
# `flows` adds `run` and `serve`, so the pipeline's orchestration sits above `seed`, never inside it.
PLUGIN_GROUP = "seed.commands"
PLUGINS = ("run", "serve")


def _delegate(name: str):
    """The ``main(argv) -> int`` of a delegated or plugged-in command."""
    import importlib
    from importlib.metadata import entry_points

    if name in DELEGATED:
        module, func = DELEGATED[name]
        return getattr(importlib.import_module(module), func)
    found = entry_points(group=PLUGIN_GROUP, name=name)
    if not found:
        raise SeedError(
            f"`seed {name}` comes from the package `flows` (entry point group {PLUGIN_GROUP}), which is "
            "not installed here; install this repository with `pip install -e .`"
        )
    return next(iter(found)).load()


def _delegated_first(argv: list[str]) -> list[str]:
    """``seed --params P -q run ...`` -> ``run --params P -q ...``: a delegated command parses its own
    options, so global options written before it are handed to it (its parser names any it lacks)."""
    moved: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in ("-q", "--quiet") or argv[i].startswith("--params="):
            moved.append(argv[i])
            i += 1
        elif argv[i] == "--params" and i + 1 < len(argv):
            moved += argv[i : i + 2]
            i += 2
        else:
            break
    if moved and i < len(argv) and (argv[i] in DELEGATED or argv[i] in PLUGINS):
        return [argv[i], *moved, *argv[i + 1 :]]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        argv = _delegated_first(argv)
        if argv and (argv[0] in DELEGATED or argv[0] in PLUGINS):
            return _delegate(argv[0])(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            target = parser
            if args.command == "data":
                target = parser._subparsers._group_actions[0].choices["data"]  # noqa: SLF001
            target.print_help()
            return 0 if args.command is None else 2
        return args.func(args)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, or bad input that no check catches yet: never a bare traceback
        import traceback

        traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__} (a bug in seed: bad input should end in one line "
            "naming the file and field); please report it with the traceback above",
            file=sys.stderr,
        )
        return 1
