"""``python -m ltu_fast`` = ``ltu-fast``; with no arguments it runs ``unlearn`` with defaults."""

import sys

from .cli import main

sys.exit(main())
