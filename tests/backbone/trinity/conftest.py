"""Trinity tests run in Trinity's own environment (.venv-trinity); see test_in_trinity_env.py for why and how.

In any Python without Trinity-RFT, the ``test_trinity_*.py`` files are not collected here: the tests
in ``test_in_trinity_env.py`` run this folder under ``.venv-trinity/bin/python -m pytest`` instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.backbone.helpers import REPO, math_agent_yaml

TRINITY_HERE = importlib.util.find_spec("trinity") is not None
if not TRINITY_HERE:
    collect_ignore_glob = ["test_trinity_*.py"]

TUTORIAL = REPO / "tutorial" / "example_math_agent" / "math_agent.yaml"


@pytest.fixture
def trinity_experiment(tmp_path: Path):
    """``make()``: the tutorial's math agent on two arithmetic tasks with the embedded model (two timelines kept)."""

    def make(model_path: str = "builtin:smollm2-135m") -> Path:
        return math_agent_yaml(tmp_path, model_path, max_response_length=1024, max_sample_per_task=2)

    return make
