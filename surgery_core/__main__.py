"""``python -m surgery_core ...`` is the ``surgery`` command (the form torchrun launches)."""

import sys

from surgery_core.cli import main

sys.exit(main())
