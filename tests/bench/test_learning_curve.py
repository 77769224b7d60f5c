"""bench/learning_curve.py's verdict: below the band fails, in or above passes, a missing validation step fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, load_file_module

BENCH = REPO / "bench/learning_curve.py"


def _bench():
    return load_file_module(BENCH, "learning_curve_bench")


BAND = {"0": {"success": [0.0, 0.1], "reward": [0.0, 0.3]}, "10": {"success": [0.4, 0.8], "reward": [0.5, 0.9]}}


def _records(tmp_path: Path, rows: list[dict]) -> Path:
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def _val(step: int, success: float, reward: float) -> dict:
    return {"step": step, "phase": "validation", "val/success_rate": success, "val/reward_mean": reward}


def test_in_and_above_band_pass_below_fails(tmp_path):
    bench = _bench()
    train = {"step": 10, "phase": "train", "reward_mean": 0.0}
    rows = bench.validation_rows(_records(tmp_path, [_val(0, 0.0, 0.1), train, _val(10, 0.9, 0.7)]))
    lines, ok = bench.check(rows, BAND)
    assert ok and "success above band" in lines[-1] and "in band" in lines[1]
    rows[10]["val/reward_mean"] = 0.45
    lines, ok = bench.check(rows, BAND)
    assert not ok and "reward below band" in lines[-1]


def test_missing_validation_step_fails(tmp_path):
    bench = _bench()
    lines, ok = bench.check(bench.validation_rows(_records(tmp_path, [_val(0, 0.0, 0.1)])), BAND)
    assert not ok and "no validation at this step" in lines[-1]


def test_not_a_records_folder_says_so(tmp_path):
    with pytest.raises(SystemExit, match="metrics.jsonl does not exist"):
        _bench().validation_rows(tmp_path)


def test_reference_band_is_checked_at_steps_the_main_job_validates():
    """The committed band names steps at which the main job validates (step 0 when it validates before
    training, then every test_freq steps and the last), each band a [low, high] within [0, 1]: a change to
    the main job's schedule that leaves the band behind fails here, not after a 15-minute run."""
    from astuner.config import load_config

    bench = _bench()
    reference = json.loads(bench.REFERENCE.read_text())
    assert {"runs", "machine", "measured", "band"} <= set(reference)
    trainer = load_config(bench.MAIN_JOB, [], cwd=bench.REPO).astuner.trainer_common
    steps = set(range(trainer.test_freq, trainer.total_training_steps + 1, trainer.test_freq))
    steps |= {trainer.total_training_steps} | ({0} if trainer.val_before_train else set())
    assert reference["band"] and {int(s) for s in reference["band"]} <= steps
    for limits in reference["band"].values():
        for name in bench.CHECKED:
            lo, hi = limits[name]
            assert 0.0 <= lo <= hi <= 1.0


def test_a_fresh_run_is_read_where_astuner_writes_it(tmp_path, monkeypatch):
    """``--exp-dir D`` puts the run's records in ``D/<experiment name>``: the bench reads them there (it
    once looked in D itself and failed after a whole run)."""
    import subprocess

    bench = _bench()
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, cwd: calls.append(cmd) or 0)
    records, _ = bench.run_main_job(tmp_path)
    assert records == tmp_path / "math_agent_cpu"
    assert calls[0][calls[0].index("--exp-dir") + 1] == str(tmp_path)
