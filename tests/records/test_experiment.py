"""The experiment folder: layout, no silent overwrite, resume, lock, atomic config writes."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from astuner.records import RecordsError, open_experiment


def test_layout_and_metrics(tmp_path):
    with open_experiment(tmp_path, "exp1", resume=False) as exp:
        exp.write_config("a: 1\n")
        exp.log_metrics(1, {"reward_mean": 0.5, "bad": math.nan})
        assert exp.trajectories_dir.is_dir() and exp.checkpoints_dir.is_dir()
    assert (tmp_path / "exp1" / "config.yaml").read_text() == "a: 1\n"
    (line,) = (tmp_path / "exp1" / "metrics.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["step"] == 1 and record["reward_mean"] == 0.5 and record["bad"] is None


def test_existing_experiment_is_never_overwritten(tmp_path):
    with open_experiment(tmp_path, "exp", resume=False) as exp:
        exp.write_config("a: 1\n")
    with pytest.raises(RecordsError, match="already holds experiment 'exp'; pass --resume"):
        open_experiment(tmp_path, "exp", resume=False)
    assert (tmp_path / "exp" / "config.yaml").read_text() == "a: 1\n"


def test_resume_keeps_the_previous_config(tmp_path):
    with open_experiment(tmp_path, "exp", resume=False) as exp:
        exp.write_config("a: 1\n")
    with open_experiment(tmp_path, "exp", resume=True) as exp:
        assert exp.resumed
        exp.write_config("a: 2\n")
    assert (tmp_path / "exp" / "config.yaml").read_text() == "a: 2\n"
    (old,) = (tmp_path / "exp" / "config_history").iterdir()
    assert old.read_text() == "a: 1\n"


def test_resume_without_a_run(tmp_path):
    with pytest.raises(RecordsError, match="there is no experiment 'nope' to resume"):
        open_experiment(tmp_path, "nope", resume=True)


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "sp ace"])
def test_bad_names(tmp_path, name):
    with pytest.raises(RecordsError, match="must be letters, digits"):
        open_experiment(tmp_path, name, resume=False)


def test_a_running_experiment_is_locked_against_a_second_process(tmp_path):
    with open_experiment(tmp_path, "exp", resume=False) as exp:
        exp.write_config("a: 1\n")
        code = (
            "import sys; from pathlib import Path; from astuner.records import open_experiment, RecordsError\n"
            "try:\n    open_experiment(Path(sys.argv[1]), 'exp', resume=True)\n"
            "except RecordsError as e:\n    print(e); sys.exit(3)\n"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert out.returncode == 3 and "in use by a running astuner (pid" in out.stdout
    # released after close
    open_experiment(tmp_path, "exp", resume=True).close()
