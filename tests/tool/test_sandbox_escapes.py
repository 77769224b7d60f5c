"""Escape attempts against the agent's python tool (item 5 of the reliability suite).

The attempts live in ``bench/sandbox_escapes.py`` (one list, also run by the bench); each one goes
through ``execute_python_code`` and checks from outside that nothing got out and nothing changed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[2] / "bench" / "sandbox_escapes.py"
_spec = importlib.util.spec_from_file_location("sandbox_escapes", _path)
escapes = sys.modules.setdefault("sandbox_escapes", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(escapes)


def test_at_least_twenty_attempts():
    assert len(escapes.ATTEMPTS) >= 20
    assert len({a.name for a in escapes.ATTEMPTS}) == len(escapes.ATTEMPTS)


@pytest.mark.parametrize("attempt", escapes.ATTEMPTS, ids=[a.name for a in escapes.ATTEMPTS])
def test_escape_is_contained(attempt):
    contained, detail = attempt.run()
    assert contained, f"{attempt.name} got out: {detail}"


def test_layers_are_reported():
    layers = escapes.layers()
    assert {"wall-timeout", "env", "rlimits", "audit-hook"} <= set(layers)
    if "uid" in layers:  # root: the fresh uid brings the process limit and the reaper
        assert {"nproc", "reaper"} <= set(layers)
