"""``python -m runtime``: the same command line as ``llm-runtime``."""

import sys

from .cli import main

sys.exit(main())
