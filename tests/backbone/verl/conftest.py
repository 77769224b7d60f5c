"""verl tests run in verl's own environment (.venv-verl); see test_in_verl_env.py for why and how.

In any Python without verl, the ``test_verl_*.py`` files are not collected here: the one test in
``test_in_verl_env.py`` runs this folder under ``.venv-verl/bin/python -m pytest`` instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.backbone.helpers import REPO, math_agent_yaml

VERL_HERE = importlib.util.find_spec("verl") is not None
if not VERL_HERE:
    collect_ignore_glob = ["test_verl_*.py"]


@pytest.fixture(scope="session")
def local_ray():
    """A private local Ray cluster for this session (2 CPUs, no dashboard), shut down at the end."""
    import ray

    ray.init(
        address="local",  # always a private cluster: never join one another process started
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def verl_experiment(tmp_path: Path):
    """``make()``: a math-agent experiment (tutorial workflow, two arithmetic tasks) for verl."""

    def make(model_path: str = "builtin:smollm2-135m") -> Path:
        extra = """
        actor_rollout_ref:
          actor:
            ppo_mini_batch_size: 2
        """
        return math_agent_yaml(tmp_path, model_path, max_response_length=256, max_sample_per_task=1, extra=extra)

    return make
