"""Docs tests: the generator scripts in scripts/docs are importable as plain modules."""

from __future__ import annotations

import sys

from tests.conftest import REPO

DOCS = REPO / "docs"
SCRIPTS = REPO / "scripts" / "docs"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
