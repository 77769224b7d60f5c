"""verl tests run in verl's own environment (.venv-verl); see test_in_verl_env.py for why and how.

In any Python without verl, the ``test_verl_*.py`` files are not collected here: the one test in
``test_in_verl_env.py`` runs this folder under ``.venv-verl/bin/python -m pytest`` instead.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from tests.conftest import SEED_HEADER

VERL_HERE = importlib.util.find_spec("verl") is not None
if not VERL_HERE:
    collect_ignore_glob = ["test_verl_*.py"]

REPO = Path(__file__).resolve().parents[3]
TUTORIAL_WORKFLOW = REPO / "tutorial" / "example_math_agent" / "workflow.py"


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


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir() -> Path:
    """The embedded model's folder (converted once into astuner's cache)."""
    from astuner.model.embedded import materialize

    return materialize("smollm2-135m")


@pytest.fixture
def verl_experiment(tmp_path: Path):
    """``make()``: a math-agent experiment (tutorial workflow, two arithmetic tasks) for verl."""

    def make(model_path: str = "builtin:smollm2-135m") -> Path:
        (tmp_path / "tasks.jsonl").write_text(
            '{"question": "What is 1+1?", "answer": "#### 2"}\n{"question": "What is 2+2?", "answer": "#### 4"}\n',
            encoding="utf-8",
        )
        body = f"""
        astuner:
          task_reader:
            type: dataset_file
            dataset_file:
              training_path: tasks.jsonl
          data:
            train_batch_size: 2
            max_prompt_length: 1024
            max_response_length: 256
          rollout:
            agentscope_workflow: {TUTORIAL_WORKFLOW}->MathAgentWorkflow
            num_repeat: 2
            max_response_length_in_one_turn: 64
            max_model_len: 2048
            multi_turn:
              max_sample_per_task: 1
          task_judge:
            judge_protocol: astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge
          model:
            path: {model_path}
        actor_rollout_ref:
          actor:
            ppo_mini_batch_size: 2
        """
        path = tmp_path / "exp.yaml"
        path.write_text(textwrap.dedent(body) + SEED_HEADER, encoding="utf-8")
        return path

    return make
