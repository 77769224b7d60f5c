"""The astuner command as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, TUTORIAL_YAML

ASTUNER = [sys.executable, "-m", "astuner"]


def run(args, cwd, **kw):
    return subprocess.run([*ASTUNER, *args], cwd=cwd, capture_output=True, text=True, timeout=120, **kw)


def test_dry_run_from_repo_root_and_from_elsewhere(tmp_path):
    a = run(["--conf", "tutorial/example_math_agent/math_agent.yaml", "--dry-run"], REPO)
    b = run(["--conf", str(TUTORIAL_YAML), "--dry-run"], tmp_path)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout
    tree = yaml.safe_load(a.stdout)
    assert tree["astuner"]["project_name"] == "math_agent"
    assert tree["algorithm"]["adv_estimator"] == "grpo"  # verl defaults
    assert tree["trinity"]["synchronizer"]["sync_method"] == "nccl"  # trinity defaults
    assert "no effect with --backbone=debug" in a.stderr
    assert not (tmp_path / "launcher_record").exists()  # a dry run writes nothing


def test_typo_exits_2_with_one_line_and_no_traceback(tmp_path):
    text = TUTORIAL_YAML.read_text().replace("    num_repeat: 4", "    num_repaet: 4")
    (tmp_path / "typo.yaml").write_text(text)
    r = run(["--conf", "typo.yaml", "--dry-run"], tmp_path)
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, r.stderr
    assert "typo.yaml" in errors[0] and "astuner.rollout.num_repaet" in errors[0] and "num_repeat" in errors[0]
    assert "Traceback" not in r.stderr


def test_override_errors_exit_2(tmp_path):
    r = run(["--conf", str(TUTORIAL_YAML), "--dry-run", "astuner.rollout.num_repeat=zero"], tmp_path)
    assert r.returncode == 2 and "astuner.rollout.num_repeat: = 'zero' is not an integer" in r.stderr
    r = run(["--conf", str(TUTORIAL_YAML), "--dry-run", "not-an-override"], tmp_path)
    assert r.returncode == 2 and "write KEY=VALUE" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_backbone_flag_is_rejected(tmp_path):
    r = run(["--conf", str(TUTORIAL_YAML), "--backbone", "ray", "--dry-run"], tmp_path)
    assert r.returncode == 2 and "invalid choice: 'ray'" in r.stderr


def test_help_documents_every_flag_with_an_example():
    r = run(["--help"], REPO)
    assert r.returncode == 0
    for flag in (
        "--conf",
        "--backbone",
        "--with-ray",
        "--with-logview",
        "--exp-dir",
        "--dry-run",
        "--resume",
        "KEY=VALUE",
    ):
        assert flag in r.stdout
    assert "e.g." in r.stdout and "examples:" in r.stdout


def test_launcher_py_runs_the_same_cli(tmp_path):
    r = subprocess.run(
        [sys.executable, str(REPO / "launcher.py"), "--conf", str(TUTORIAL_YAML), "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "project_name: math_agent" in r.stdout


def test_run_writes_records_and_refuses_to_overwrite(minimal_experiment, tmp_path):
    conf = minimal_experiment(name="myexp.yaml")
    first = run(["--conf", str(conf), "--exp-dir", str(tmp_path / "records")], tmp_path)
    exp = tmp_path / "records" / "myexp"
    assert (exp / "config.yaml").is_file() and (exp / "astuner.log").is_file(), first.stderr
    assert yaml.safe_load((exp / "config.yaml").read_text())["astuner"]["rollout"]["num_repeat"] == 4
    assert "tasks: 1 training, 0 validation" in (exp / "astuner.log").read_text()
    # as if that start had trained a step (one that never did is started afresh: tests/records)
    (exp / "metrics.jsonl").write_text('{"step": 1, "phase": "train"}\n')
    second = run(["--conf", str(conf), "--exp-dir", str(tmp_path / "records")], tmp_path)
    assert second.returncode == 2 and "already holds experiment 'myexp'; pass --resume" in second.stderr


def test_default_records_root_is_launcher_record_in_the_cwd(minimal_experiment, tmp_path):
    conf = minimal_experiment(name="here.yaml")
    work = tmp_path / "work"
    work.mkdir()
    run(["--conf", str(conf)], work)
    assert (work / "launcher_record" / "here" / "config.yaml").is_file()


def test_public_api_imports():
    code = "from astuner import ModelTuner, Workflow, WorkflowTask, WorkflowOutput; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path("/"))
    assert r.stdout.strip() == "ok", r.stderr
