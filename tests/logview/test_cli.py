"""``astuner logview``: one-line errors for bad input, the bind warning, and a served experiment."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from tests.conftest import REPO


def astuner(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "astuner", *args], cwd=REPO, capture_output=True, text=True, timeout=60, **kw
    )


def test_not_a_folder(tmp_path):
    r = astuner("logview", str(tmp_path / "nope"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"logview: {tmp_path / 'nope'} is not a folder; pass launcher_record/<experiment>"


def test_records_root_instead_of_an_experiment_names_the_experiments(records):
    r = astuner("logview", str(records.parent))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "is not an experiment folder" in r.stderr and "experiments inside it: viewer" in r.stderr


def test_bad_port(records):
    r = astuner("logview", str(records), "--port", "70000")
    assert r.returncode == 2 and r.stderr.strip() == "logview: --port must be in 0..65535, not 70000"


def test_help_has_examples():
    r = astuner("logview", "--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "--host" in r.stdout


def test_serves_and_warns_on_a_public_bind(records):
    proc = subprocess.Popen(
        [sys.executable, "-m", "astuner", "logview", str(records), "--host", "0.0.0.0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split(": ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/overview", timeout=10) as r:
            assert json.load(r)["name"] == "viewer"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "anyone who can reach this machine can read these trajectories" in err
