"""bench/learning_curve.py's verdict: below the band fails, in or above passes, a missing validation step fails."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench/learning_curve.py"


def _bench():
    spec = importlib.util.spec_from_file_location("learning_curve_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
