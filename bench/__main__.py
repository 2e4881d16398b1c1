"""``python -m bench``: see bench/README.md (``bench/run`` is the one command)."""

import sys

from bench.driver import main

sys.exit(main())
