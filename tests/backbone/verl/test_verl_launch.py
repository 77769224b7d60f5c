"""``astuner --backbone=verl`` for real on this CPU machine, from an empty working directory.

verl starts (Hydra, Ray, its TaskRunner) and then waits for GPUs this machine does not have; the
test stops it with SIGTERM once verl's Hydra has set up its run dir. Checked: the config the run
wrote is byte for byte what ``--dry-run`` printed (the plan is the run), and nothing appeared in
the working directory outside ``launcher_record/<experiment>/`` (verl's Hydra would write
``outputs/`` there).
"""

from __future__ import annotations

from tests.backbone.helpers import dry_run_config, files_below, run_until


def test_the_run_writes_the_planned_config_and_nothing_outside_its_records(verl_experiment, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    argv = ["--conf", str(verl_experiment()), "--backbone=verl"]
    planned = dry_run_config(argv, cwd)
    assert files_below(cwd) == []  # the dry run writes nothing
    exp = cwd / "launcher_record" / "exp"
    proc = run_until(argv, cwd, exp / "verl" / "hydra" / ".hydra" / "config.yaml")
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (exp / "verl" / "verl_config.yaml").read_text(encoding="utf-8") == planned
    assert {p.split("/")[0] for p in files_below(cwd)} == {"launcher_record"}
    assert {p.split("/")[1] for p in files_below(cwd) if "/" in p} == {"exp"}
