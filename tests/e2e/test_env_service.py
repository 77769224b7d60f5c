"""EnvService end to end: the tutorial's YAML on the debug backbone, its reference server killed mid-run.

One run (rollout only, three short steps) checks what the issue's "done when" asks: astuner starts
the reference server and vLLM, records multi-turn samples; after the env server is SIGKILLed the
remaining steps still complete, with those episodes counted as failed and a log line naming the
URL and endpoint; at exit neither the env server nor vLLM is left running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e
TUTORIAL = REPO / "tutorial" / "example_env_service" / "guess_number_cpu.yaml"
OVERRIDES = [
    "astuner.debug.rollout_only=true",
    "astuner.trainer_common.total_training_steps=3",
    "astuner.trainer_common.val_before_train=false",
    "astuner.task_reader.env_service.validation_split=null",
    "astuner.task_reader.env_service.retries=2",
    "astuner.task_reader.env_service.retry_backoff=0.1",
    "astuner.data.train_batch_size=2",
    "astuner.rollout.num_repeat=2",
    "astuner.rollout.max_num_seqs=8",
]


def pid_in_log(log: str, pattern: str) -> int:
    match = re.search(pattern, log)
    assert match, f"no line matching {pattern!r} in the log"
    return int(match.group(1))


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def episodes(exp: Path, step: int) -> list[dict]:
    path = exp / "trajectories" / f"step_{step:06d}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, smollm2_dir):
    root = tmp_path_factory.mktemp("env_e2e")
    exp = root / "guess_number_cpu"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "astuner", "--conf", str(TUTORIAL), "--backbone=debug", "--exp-dir", str(root)]
        + OVERRIDES,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while not (exp / "trajectories" / "step_000001.jsonl").is_file():
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() - started < 240, "step 1 took too long"
            time.sleep(0.05)
        env_pid = pid_in_log((exp / "astuner.log").read_text(), r"env service ready in [\d.]+s \(pid (\d+)\)")
        os.kill(env_pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, exp, env_pid, time.monotonic() - started


def test_multi_turn_samples_are_recorded(killed_run):
    code, out, exp, _, seconds = killed_run
    assert code == 0, out[-3000:]
    first = episodes(exp, 1)
    assert len(first) == 4 and all(e["status"] == "ok" for e in first), [e["error"] for e in first]
    for e in first:
        # every guess is an LLM call; the turns of one episode merge into one sample
        assert e["output_metadata"]["turns"] == e["metrics"]["calls"] >= 1 and e["reward"] in (0.0, 1.0)
        assert len(e["samples"]) == 1 and len(e["samples"][0]["call_indices"]) == e["metrics"]["calls"]
    # a lucky first guess ends a game after one turn, but 4 lucky guesses in a row are ~1e-4 likely
    multi = [e for e in first if e["metrics"]["calls"] >= 2]
    assert multi, "no episode took more than one turn"
    # the environment's answers between the turns are context (mask 0), the guesses are trained (mask 1)
    assert all({0, 1} <= set(e["samples"][0]["loss_mask"]) for e in multi)
    print(f"e2e env service run: {seconds:.1f}s")


def test_killed_env_server_fails_episodes_not_the_run(killed_run):
    code, out, exp, env_pid, _ = killed_run
    assert code == 0, out[-3000:]
    rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["phase"] == "train"] == [1, 2, 3]
    last = episodes(exp, 3)
    assert [e["status"] for e in last] == ["failed"] * 4
    assert all("env service http://127.0.0.1:" in e["error"] and "POST /create" in e["error"] for e in last)
    assert rows[-1]["episodes_failed"] == 4
    assert re.search(
        r"step 3 /3 rollout: 4 of 4 episodes failed; first: .*EnvServiceError: env service "
        r"http://127\.0\.0\.1:\d+ POST /create .*connection refused",
        out,
    )
    assert f"the env service (pid {env_pid}) had exited with code -9 during the run" in out


def test_no_process_is_left_behind(killed_run):
    _, out, exp, env_pid, _ = killed_run
    vllm_pid = pid_in_log(out, r"vLLM ready in [\d.]+s \(pid (\d+)\)")
    assert group_gone(env_pid) and group_gone(vllm_pid)
