"""``python -m seed.validate``: the same as ``seed validate``."""

from __future__ import annotations

import sys

from seed.validate.cli import main_validate

if __name__ == "__main__":
    sys.exit(main_validate())
