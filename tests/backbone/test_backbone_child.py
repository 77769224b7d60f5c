"""The backbone child (verl's or Trinity's launcher): progress from its log, its exit code, why it failed."""

from __future__ import annotations

import sys

from astuner.backbone.ray_head import failure_line, run_on_ray
from astuner.backbone.verl.progress import progress_line

# verl 0.9.1's console logger on the GPU run (one H100), cut to the keys that matter, Ray's prefix kept
STEP_LINE = (
    "\x1b[36m(TaskRunnerV1 pid=2018)\x1b[0m step:2 - global_seqlen/mean:167421.0 - critic/score/mean:0.0 - "
    "timing_s/gen:8.10447212500003 - timing_s/old_log_prob:10.152056255000048 - timing_s/adv:0.2067 - "
    "timing_s/update_actor:36.293272108 - timing_s/update_weights:0.40530811399992217 - "
    "timing_s/step:55.29269749800005 - perf/throughput:3027.9"
)
VAL_LINE = "(TaskRunnerV1 pid=7) step:0 - val-core/astuner/reward/mean@1:0.25 - val-aux/astuner/reward/std@1:0.1"


def test_verl_console_lines_become_progress_lines():
    assert progress_line(STEP_LINE) == (
        "verl step 2: reward 0.000 | 55.3s (gen 8.1s, old logprob 10.2s, update 36.3s, weight sync 0.4s)"
    )
    assert progress_line(VAL_LINE) == "verl validation at step 0: astuner/reward/mean@1 0.250"
    assert progress_line("(vLLMHttpServer pid=5) INFO 11-25 15:24:29 [api_router.py:30] Started") is None
    assert progress_line("step:1 - actor/entropy:0.6") is None  # a metrics line that is not a whole step


def test_failure_line_is_the_error_not_rays_last_words(tmp_path):
    log = tmp_path / "verl.log"
    log.write_text(
        "Training Progress: 0/3\n"
        "Traceback (most recent call last):\n"
        '  File "/tmp/site/verl/trainer/ppo/v1/trainer_base.py", line 1897, in _compute_metrics\n'
        "TypeError: int() argument must be a string, a bytes-like object or a real number, not 'NoneType'\n"
        "(SimpleStorageUnit pid=4846) 2026-11-25 15:26:19 - INFO - Total success requests: 333\n"
        "(SimpleStorageUnit pid=4846) Time range: last 5.22 minutes;\n"
    )
    assert failure_line(log).startswith("TypeError: int() argument must be")
    quiet = tmp_path / "quiet.log"
    quiet.write_text("starting\nexiting with code 3\n")
    assert failure_line(quiet) == "exiting with code 3"
    assert failure_line(tmp_path / "missing.log") == "(no log)"


def test_child_is_followed_line_by_line_and_its_exit_code_returned(tmp_path):
    script = (
        "import sys, time\n"
        "print('booting', flush=True)\n"
        f"print({STEP_LINE!r}[:60], end='', flush=True)\n"  # half a line: shown only once it is whole
        "time.sleep(1.5)\n"
        f"print({STEP_LINE!r}[60:], flush=True)\n"
        f"print({VAL_LINE!r}, flush=True)\n"
        "sys.exit(3)\n"
    )
    seen: list[str] = []

    def progress(line: str) -> str | None:
        seen.append(line)
        return progress_line(line)

    log = tmp_path / "child.log"
    log.write_text("an earlier run (resumed now) wrote:\n" + STEP_LINE.replace("step:2", "step:1") + "\n")
    code = run_on_ray([sys.executable, "-c", script], log, None, progress=progress)
    assert code == 3
    assert seen == ["booting", STEP_LINE, VAL_LINE]  # the earlier run's step 1 is not reported again
    assert log.read_text().splitlines()[2:] == ["booting", STEP_LINE, VAL_LINE]
