"""``python -m bench``: the benchmark harness (``bench.harness``)."""

import sys

from bench.harness import main

sys.exit(main())
