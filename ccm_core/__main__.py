import sys

from ccm_core.cli import main

sys.exit(main())
