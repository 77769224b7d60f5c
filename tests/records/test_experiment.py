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
        exp.log_metrics(1, {"phase": "train"})
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


def _open_in_another_process(records_root, resume: bool):
    code = (
        "import sys; from pathlib import Path; from astuner.records import open_experiment, RecordsError\n"
        f"try:\n    open_experiment(Path(sys.argv[1]), 'exp', resume={resume})\n"
        "except RecordsError as e:\n    print(e); sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(records_root)], capture_output=True, text=True)


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "fresh-start"])
def test_a_running_experiment_is_locked_against_a_second_process(tmp_path, resume):
    """Also without --resume: clearing a start that never trained happens under the lock, so a second
    start never clears a run that is still in its first step."""
    with open_experiment(tmp_path, "exp", resume=False) as exp:
        exp.write_config("a: 1\n")
        out = _open_in_another_process(tmp_path, resume)
        assert out.returncode == 3 and "in use by a running astuner (pid" in out.stdout
        assert exp.config_path.read_text() == "a: 1\n" and not (exp.root / "config_history").exists()
    # released after close
    open_experiment(tmp_path, "exp", resume=True).close()


# ---- a start that never trained does not block the next one --------------------------------------------------


def _never_trained(root, backbone_files=()):
    """What a start that failed before its first training step leaves (debug, verl and Trinity files)."""
    with open_experiment(root.parent, root.name, resume=False) as exp:
        exp.write_config("a: 1\n")
        exp.log_path.write_text("earlier start: the dataset was wrong\n")
        exp.log_metrics(0, {"phase": "validation", "val/reward_mean": 0.1})  # validation before training
    files = {
        "vllm.log": "engine log\n",
        "verl/verl.log": "verl log\n",
        "verl/verl_config.yaml": "x: 1\n",
        "verl/metrics.jsonl": json.dumps({"step": 0, "data": {"val-core/math/reward/mean@1": 0.1}}) + "\n",
        "trajectories/val_step_000000.jsonl": "{}\n",
        "trajectories/verl_val_step_000000.123.jsonl": "{}\n",
        "trajectories/trinity_val_step_000000.123.jsonl": "{}\n",
        "trinity/logs/explorer.log": "trinity log\n",
        "checkpoints/math_agent/exp/monitor/events": "",  # Trinity's job folder, made at start
        "checkpoints/math_agent/exp/global_step_0/.full_checkpoint": "",  # Trinity's final save, always made
        "tokenizer/tokenizer.json": "{}",
        **dict(backbone_files),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_a_start_that_never_trained_is_cleared_keeping_its_config_and_logs(tmp_path):
    from loguru import logger

    root = tmp_path / "exp"
    _never_trained(root)
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO", format="{message}")
    try:
        with open_experiment(tmp_path, "exp", resume=False) as exp:
            assert not exp.resumed
            exp.write_config("a: 2\n")
    finally:
        logger.remove(sink)
    (line,) = [x for x in lines if "never completed a training step" in x]
    assert "starting afresh" in line and str(root / "config_history") in line
    kept = {p.name.rsplit("-", 2)[0]: p.read_text() for p in (root / "config_history").iterdir()}
    assert kept == {
        "config": "a: 1\n",
        "astuner": "earlier start: the dataset was wrong\n",
        "vllm": "engine log\n",
        "verl-verl": "verl log\n",
        "trinity-logs-explorer": "trinity log\n",
    }
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if "config_history" not in p.parts)
    assert left == [".lock", "checkpoints", "config.yaml", "trajectories"]
    assert (root / "config.yaml").read_text() == "a: 2\n"


@pytest.mark.parametrize(
    "evidence",
    [
        {"metrics.jsonl": json.dumps({"step": 1, "phase": "train", "reward_mean": 0.5}) + "\n"},
        {"verl/metrics.jsonl": json.dumps({"step": 1, "data": {"timing_s/step": 3.0}}) + "\n"},
        {"checkpoints/step_1/state.json": "{}"},
        {"checkpoints/global_step_2/latest": ""},
        {"checkpoints/math_agent/exp/global_step_1/actor/model.pt": ""},
        {"trajectories/step_000001.jsonl": "{}\n"},
        {"trajectories/verl_step_000001.4242.jsonl": "{}\n"},
        {"trajectories/trinity_step_000000.4242.jsonl": "{}\n"},
    ],
    ids=[
        "debug-metrics",
        "verl-metrics",
        "debug-ckpt",
        "verl-ckpt",
        "trinity-ckpt",
        "debug-traj",
        "verl-traj",
        "trinity-traj",
    ],
)
def test_a_completed_step_still_needs_resume(tmp_path, evidence):
    root = tmp_path / "exp"
    _never_trained(root, evidence)
    before = sorted(p for p in root.rglob("*"))
    with pytest.raises(RecordsError, match="already holds experiment 'exp'; pass --resume") as e:
        open_experiment(tmp_path, "exp", resume=False)
    assert "\n" not in str(e.value)
    assert sorted(p for p in root.rglob("*")) == before and not (root / "config_history").exists()
    open_experiment(tmp_path, "exp", resume=True).close()  # and it resumes


def test_a_folder_astuner_did_not_write_is_never_cleared(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    with pytest.raises(RecordsError, match="already holds experiment 'exp'"):
        open_experiment(tmp_path, "exp", resume=False)
    assert (tmp_path / "exp" / "notes.txt").read_text() == "mine"


def test_empty_folders_of_an_interrupted_open_are_no_run(tmp_path):
    open_experiment(tmp_path, "exp", resume=False).close()  # no config written: killed right after opening
    with pytest.raises(RecordsError, match="there is no experiment 'exp' to resume"):
        open_experiment(tmp_path, "exp", resume=True)
    open_experiment(tmp_path, "exp", resume=False).close()
    assert not (tmp_path / "exp" / "config_history").exists()


def test_cli_rerun_after_a_start_that_failed_before_training(minimal_experiment, tmp_path):
    """The case from the issue: a start fails on its tasks; the rerun starts without --resume."""
    (tmp_path / "tasks.jsonl").write_text('{"nothing": 1}\n')  # passes the config check, fails when read
    conf = minimal_experiment()
    argv = [sys.executable, "-m", "astuner", "--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path / "r")]
    first = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert first.returncode == 2 and "has no field 'question'" in first.stderr
    second = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert second.returncode == 2 and "has no field 'question'" in second.stderr, second.stderr
    assert "never completed a training step; starting afresh" in second.stderr and "--resume" not in second.stderr
    history = sorted(p.name.rsplit("-", 2)[0] for p in (tmp_path / "r" / "exp" / "config_history").iterdir())
    assert history == ["astuner", "config"]
