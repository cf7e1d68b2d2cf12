"""``seed validate``: check a world folder, a POPE file or an MME folder and print the report.

Exit status: 0 valid, 1 invalid (the report names file, row and failed expectation), 2 unusable
input (a missing folder or file, a bad option), printed as one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seed.errors import SeedError

EPILOG = """\
examples:
  seed validate data/world                                 a world folder from `seed data synth`
  seed validate --pope coco_pope_random.json --images val2014/
  seed validate --mme MME_Benchmark_release/               subtask folders (or one subtask folder)

exit status: 0 valid, 1 invalid, 2 unusable input.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seed validate",
        description="Validate data with great-expectations: a world folder (annotations, images,\n"
        "conversations, POPE, MME, CHAIR and train/eval disjointness), an official POPE file\n"
        "with its image folder, or an MME folder. The report names file, row and failed check.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "world",
        nargs="?",
        type=Path,
        metavar="DIR",
        help="world folder to validate (layout in docs/data-format.md)",
    )
    parser.add_argument(
        "--pope", type=Path, metavar="FILE", help="a POPE question file (JSONL); needs --images"
    )
    parser.add_argument(
        "--images", type=Path, metavar="DIR", help="folder the POPE 'image' names resolve against"
    )
    parser.add_argument("--mme", type=Path, metavar="DIR", help="an MME folder of subtask folders")
    parser.add_argument(
        "--max-image-side",
        type=int,
        default=1024,
        metavar="PX",
        help="largest allowed image width or height in pixels (default: 1024)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    return parser


def main_validate(argv: list[str] | None = None) -> int:
    """Run ``seed validate``; returns the exit status (0 valid, 1 invalid, 2 unusable input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = [
        name for name, value in (("DIR", args.world), ("--pope", args.pope), ("--mme", args.mme)) if value
    ]
    if len(chosen) != 1:
        parser.error("give exactly one of DIR, --pope FILE --images DIR, or --mme DIR")
    if (args.pope is None) != (args.images is None):
        parser.error("--pope and --images go together")
    from seed.validate.mme import validate_mme
    from seed.validate.pope import validate_pope
    from seed.validate.world import validate_world

    try:
        if args.pope is not None:
            report = validate_pope(args.pope, args.images, args.max_image_side)
        elif args.mme is not None:
            report = validate_mme(args.mme, args.max_image_side)
        else:
            report = validate_world(args.world, args.max_image_side)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1
