"""``python -m effzoo``: the same as the ``effzoo`` command."""

import sys

from .cli import main

sys.exit(main())
