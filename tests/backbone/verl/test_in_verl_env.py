"""Run the verl tests in verl's own environment.

Why a second environment: verl 0.9.1 declares ``transformers<5.11`` and astuner's CPU stack needs
``>=5.16``, so verl cannot be installed in ``.venv``. ``scripts/setup_env.sh`` builds ``.venv-verl``
(``requirements/verl-cpu.txt``, astuner installed ``--no-deps``); this test, collected by the
README test command in ``.venv``, runs ``tests/backbone/verl`` there with pytest and fails with
its output if anything fails. Inside ``.venv-verl`` itself it is skipped (the tests run directly).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backbone.helpers import run_suite_in
from tests.backbone.verl.conftest import REPO, VERL_HERE


@pytest.mark.skipif(VERL_HERE, reason="this Python has verl: the verl tests run directly")
def test_verl_suite_in_verl_env():
    python = Path(os.environ.get("ASTUNER_VERL_PYTHON") or REPO / ".venv-verl" / "bin" / "python")
    run_suite_in(python, Path(__file__).parent, "verl")


@pytest.mark.skipif(VERL_HERE, reason="this Python has verl: nothing to hand over")
def test_dry_run_hands_over_to_the_verl_env(tmp_path):
    """``astuner --backbone=verl`` from .venv (no verl) re-runs the same command in .venv-verl."""
    tutorial = REPO / "tutorial" / "example_math_agent" / "math_agent.yaml"
    argv = ["--conf", str(tutorial), "--backbone=verl", "--dry-run", "--exp-dir", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-m", "astuner", *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "handing over to" in proc.stderr and "default_agent_loop: astuner" in proc.stdout
