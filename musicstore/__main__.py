"""``python -m musicstore``: the same as the ``musicstore`` command."""

import sys

from .cli import main

sys.exit(main())
