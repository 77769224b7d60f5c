"""run_suite_in (the in-env suites of verl and Trinity): a failed inner run keeps its whole output."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.backbone.helpers import run_suite_in


def _suite(folder: Path, body: str) -> Path:
    folder.mkdir()
    (folder / "test_inner.py").write_text(body)
    return folder


def test_a_failed_inner_run_keeps_its_output_and_tmp_folders(tmp_path):
    body = (
        "def test_writes_then_fails(tmp_path):\n"
        "    (tmp_path / 'records.log').write_text('why it failed')\n"
        "    print('inner output ' + 'x' * 10000)\n"
        "    assert False, 'the inner failure'\n"
    )
    with pytest.raises(AssertionError) as e:
        run_suite_in(Path(sys.executable), _suite(tmp_path / "inner", body), "Demo")
    message = str(e.value)
    assert "Demo tests failed (exit code 1)" in message and "whole output: " in message
    output = Path(message.split("whole output: ", 1)[1].splitlines()[0])
    try:
        assert output.parent.parent.name == "test-artifacts" and output.parent.name.startswith("demo-suite-")
        text = output.read_text()
        assert "the inner failure" in text and "inner output " + "x" * 10000 in text  # all of it, not a tail
        assert [p.read_text() for p in (output.parent / "tmp").rglob("records.log")] == ["why it failed"]
    finally:
        shutil.rmtree(output.parent)


def test_a_passing_inner_run_leaves_nothing(tmp_path):
    from tests.conftest import ARTIFACTS

    before = set(ARTIFACTS.glob("demo-suite-*")) if ARTIFACTS.is_dir() else set()
    run_suite_in(Path(sys.executable), _suite(tmp_path / "inner", "def test_ok():\n    pass\n"), "Demo")
    assert set(ARTIFACTS.glob("demo-suite-*")) == before
