"""``python -m seed.stages <stage>``: run one stage on the default paths (what dvc.yaml calls)."""

import sys

from seed.stages import main

sys.exit(main())
