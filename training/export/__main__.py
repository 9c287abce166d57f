"""``python -m training.export``: see :mod:`training.export.cli`."""

import sys

from .cli import cli_main

sys.exit(cli_main())
