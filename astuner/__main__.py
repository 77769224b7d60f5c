"""``python -m astuner`` runs the CLI."""

import sys

from astuner.cli import main

sys.exit(main())
