"""A Trinity run that exited 0 after its trainer or explorer failed is reported as failed, with the reason.

The logs are excerpts of the real ``trinity.log`` of two runs on the lent H200 (2026-12-02): the
explorer failed on a missing package of its experience buffer, then the trainer in its first step.
Both times ``trinity run`` exited 0.
"""

from __future__ import annotations

from pathlib import Path

from astuner.backbone.trinity.outcome import swallowed_failure

DATA = Path(__file__).parent / "data"


def test_a_failed_trainer_is_named_with_its_exception():
    line = swallowed_failure(DATA / "trainer_failed.log")
    assert line is not None and line.startswith("Trinity's trainer failed and Trinity exited 0 anyway: ")
    assert "ModuleNotFoundError: No module named 'flash_attn'" in line and "\n" not in line


def test_a_failed_explorer_is_named_with_its_exception():
    line = swallowed_failure(DATA / "explorer_failed.log")
    assert line is not None and "explorer failed" in line
    assert "ModuleNotFoundError: No module named 'aiosqlite'" in line


def test_a_clean_log_and_a_missing_one_are_no_failure(tmp_path):
    clean = tmp_path / "trinity.log"
    clean.write_text("(Trainer pid=1) INFO 12-02 01:53:36 [trainer.py:175] > Trainer finished.\n")
    assert swallowed_failure(clean) is None
    assert swallowed_failure(tmp_path / "absent.log") is None
