"""Trinity tests run in Trinity's own environment (.venv-trinity); see test_in_trinity_env.py for why and how.

In any Python without Trinity-RFT, the ``test_trinity_*.py`` files are not collected here: the tests
in ``test_in_trinity_env.py`` run this folder under ``.venv-trinity/bin/python -m pytest`` instead.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from tests.conftest import SEED_HEADER

TRINITY_HERE = importlib.util.find_spec("trinity") is not None
if not TRINITY_HERE:
    collect_ignore_glob = ["test_trinity_*.py"]

REPO = Path(__file__).resolve().parents[3]
TUTORIAL = REPO / "tutorial" / "example_math_agent" / "math_agent.yaml"
TUTORIAL_WORKFLOW = REPO / "tutorial" / "example_math_agent" / "workflow.py"


@pytest.fixture
def trinity_experiment(tmp_path: Path):
    """``make(extra_yaml="")``: the tutorial's math agent on two arithmetic tasks with the embedded model."""

    def make(extra_yaml: str = "", model_path: str = "builtin:smollm2-135m") -> Path:
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
            max_response_length: 1024
          rollout:
            agentscope_workflow: {TUTORIAL_WORKFLOW}->MathAgentWorkflow
            num_repeat: 2
            max_response_length_in_one_turn: 48
            max_model_len: 2048
            multi_turn:
              max_sample_per_task: 2
          task_judge:
            judge_protocol: astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge
          model:
            path: {model_path}
        """
        path = tmp_path / "exp.yaml"
        path.write_text(textwrap.dedent(body) + textwrap.dedent(extra_yaml) + SEED_HEADER, encoding="utf-8")
        return path

    return make
