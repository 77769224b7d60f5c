"""LogviewProcess: the viewer as a child the run owns, stopped by PID with nothing left behind."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from astuner.logview.process import LogviewProcess
from astuner.processes import ProcessStartError


def test_starts_announces_and_stops(records, tmp_path):
    with LogviewProcess(records, tmp_path / "logview.log") as viewer:
        assert viewer.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(viewer.url + "api/overview", timeout=10) as r:
            assert json.load(r)["name"] == "viewer"
        pid = viewer.pid
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with pytest.raises(OSError):
        urllib.request.urlopen(viewer.url, timeout=2)


def test_a_viewer_that_cannot_start_reports_its_log(tmp_path):
    viewer = LogviewProcess(tmp_path / "missing", tmp_path / "logview.log", startup_timeout=20)
    with pytest.raises(
        ProcessStartError, match=r"^logview exited with code 2 while starting; .* says: .*is not a folder"
    ):
        viewer.start()
    with pytest.raises(ProcessLookupError):
        os.killpg(viewer.pid, 0)
