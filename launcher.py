"""Run the astuner CLI from a checkout: ``python launcher.py --conf X.yaml --backbone debug``.

Kept at the repo root so an IDE can debug it directly (VS Code: ``"program": "launcher.py"``).
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from astuner.cli import main

    sys.exit(main())
