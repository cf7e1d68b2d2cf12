"""``python -m seed.cli``: the `seed` command (what torchrun launches for a multi-process purify)."""

import sys

from seed.cli import main

sys.exit(main())
