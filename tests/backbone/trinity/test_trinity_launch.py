"""``astuner --backbone=trinity --with-ray`` on this CPU machine: the launch path up to Trinity's GPU check.

What runs for real: astuner writes Trinity's inputs, starts a Ray head it owns (token auth with a
token of its own), and runs ``trinity run``, which connects to that head and starts its own cluster
check. Trinity then stops, because the cluster has no GPU (what runs on GPUs is the multi-GPU run
issue's job). Checked: Trinity connected to our head, astuner reports the failed child with its log,
and the head is gone afterwards (stopped by PID); the config the run wrote is byte for byte what
``--dry-run`` printed (the plan is the run), and nothing appeared in the working directory outside
``launcher_record/<experiment>/``.

The run has an empty ``HOME``, as on a machine where Ray never ran. Why: Ray 2.60's ``ray start``
turns token authentication on only when ``~/.ray/auth_token`` already exists (any earlier local
``ray.init()`` writes one, e.g. the verl suite's), while the head's clients always ask for it
(``RAY_AUTH_MODE=token``). So this test used to pass or fail with the state of the home folder: it
failed on the first README test run on a machine (the Trinity suite runs before the verl suite) and
passed on the next. Now it always sees the fresh-machine case, which ``RayHead`` handles by giving the
head and its clients a token of their own (``RAY_AUTH_TOKEN``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.backbone.helpers import dry_run_config, files_below


def test_with_ray_runs_trinity_on_an_owned_ray_head(trinity_experiment, tmp_path):
    from astuner.model.embedded import cache_dir

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    argv = ["--conf", str(trinity_experiment()), "--backbone=trinity", "--with-ray"]
    planned = dry_run_config(argv, cwd)
    assert files_below(cwd) == []  # the dry run writes nothing (Trinity's check runs on a scratch copy)
    # A home where Ray never ran (no ~/.ray/auth_token); the model cache stays where it is.
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "ASTUNER_CACHE": str(cache_dir())}
    proc = subprocess.run(
        [sys.executable, "-m", "astuner", *argv], capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )
    root = cwd / "launcher_record" / "exp"
    assert (root / "trinity" / "trinity_config.yaml").read_text(encoding="utf-8") == planned
    assert {p.split("/")[0] for p in files_below(cwd)} == {"launcher_record"}
    assert {p.split("/")[1] for p in files_below(cwd) if "/" in p} == {"exp"}
    log = (root / "trinity.log").read_text()
    assert "Connected to Ray cluster" in log and "Auto-detected and set gpu_per_node: 0" in log
    # the reason, not whatever Ray printed last: Trinity's validator fails with no GPUs on this machine
    assert proc.returncode != 0 and f"{root / 'trinity.log'} says: ZeroDivisionError" in proc.stderr
    for name in ("trinity_config.yaml", "astuner_run.json", "tasks/train.jsonl"):
        assert (root / "trinity" / name).is_file(), name
    pid = int(re.search(r"Ray head \(pid (\d+)\)", proc.stderr).group(1))
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the Ray head astuner started is still running"
    assert not home.exists(), "the run wrote into the home folder (e.g. a Ray token in ~/.ray)"
