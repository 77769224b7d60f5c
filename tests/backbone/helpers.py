"""Helpers shared by the verl and Trinity backbone tests (each backbone's tests run in its own venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

from tests.conftest import ARTIFACTS, SEED_HEADER

REPO = Path(__file__).resolve().parents[2]
TUTORIAL_WORKFLOW = REPO / "tutorial" / "example_math_agent" / "workflow.py"


def run_suite_in(python: Path, folder: Path, what: str, env: dict[str, str] | None = None) -> None:
    """Run ``pytest folder`` under ``python`` (a backbone's venv) and fail with its output if anything fails.

    Why a folder under ``test-artifacts/`` (git-ignored, kept by CI): a failure of the inner suite
    used to survive only as the tail in this assertion, and its pytest tmp folders (the runs' records:
    the backbone's log, ray.log) are recycled by the next pytest on the machine. The inner run streams
    its whole output to ``output.log`` there and keeps its tmp folders in ``tmp/``; both are removed
    when it passes and kept, with the path printed, when it fails or times out.
    """
    if not python.is_file():
        raise AssertionError(f"no {what} environment at {python}: run scripts/setup_env.sh (it builds it)")
    keep = ARTIFACTS / f"{what.lower()}-suite-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    keep.mkdir(parents=True)
    output = keep / "output.log"
    cmd = [str(python), "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", f"--basetemp={keep / 'tmp'}"]
    with output.open("w", encoding="utf-8") as out:
        try:
            code = subprocess.run(
                [*cmd, str(folder)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=900,
                env={**os.environ, **(env or {})},
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    if code == 0:
        shutil.rmtree(keep, ignore_errors=True)
        return
    print(f"{what} suite output kept in {output} (its tmp folders in {keep / 'tmp'})")
    how = "timed out after 900s" if code is None else f"failed (exit code {code})"
    tail = output.read_text(encoding="utf-8", errors="replace")[-6000:]
    raise AssertionError(f"{what} tests {how} in {python}; whole output: {output}\n{tail}")


def math_agent_yaml(
    folder: Path, model_path: str, max_response_length: int, max_sample_per_task: int, extra: str = ""
) -> Path:
    """The tutorial's math agent on two arithmetic tasks (``tasks.jsonl``) as ``folder/exp.yaml``."""
    (folder / "tasks.jsonl").write_text(
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
        max_response_length: {max_response_length}
      rollout:
        agentscope_workflow: {TUTORIAL_WORKFLOW}->MathAgentWorkflow
        num_repeat: 2
        max_response_length_in_one_turn: 64
        max_model_len: 2048
        multi_turn:
          max_sample_per_task: {max_sample_per_task}
      task_judge:
        judge_protocol: astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge
      model:
        path: {model_path}
    """
    path = folder / "exp.yaml"
    path.write_text(textwrap.dedent(body) + textwrap.dedent(extra) + SEED_HEADER, encoding="utf-8")
    return path


def write_planned_inputs(loaded, records: Path, train: list, val: list):
    """Plan ``loaded`` on its backbone and write what the child would read (config, files, tasks, run spec)
    into ``records``, as a real run does before it starts the child; returns the plan."""
    from astuner.backbone import get_backbone
    from astuner.backbone.base import RunInputs

    backbone = get_backbone(loaded.backbone)
    plan = backbone.plan(loaded, records)
    backbone.write_inputs(plan, RunInputs(loaded=loaded, experiment=None, train=list(train), val=list(val)))
    return plan


def dry_run_config(argv: list[str], cwd: Path) -> str:
    """What ``astuner ARGV --dry-run`` prints (the planned config), run from ``cwd``."""
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "astuner", *argv, "--dry-run"], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def run_until(argv: list[str], cwd: Path, ready: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``astuner ARGV`` from ``cwd`` until ``ready`` exists (the backbone's child is running), then
    SIGTERM it as a user's Ctrl-C/kill would, and return how it ended (it must end by itself)."""
    import signal
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "astuner", *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate()
                raise AssertionError(f"{ready} never appeared (exit {proc.returncode}):\n{err[-3000:]}")
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def files_below(folder: Path) -> list[str]:
    """Every path below ``folder``, relative, sorted (what a run left in its working directory)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
