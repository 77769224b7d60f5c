"""Whether a Trinity run that exited 0 did what it was asked: Trinity logs a failed trainer or explorer and exits 0.

Why: Trinity-RFT 0.6.0's ``Trainer.train`` and ``Explorer.explore`` catch every exception, log it
("Error in Trainer:" / "Error in Explorer:" and the traceback), stop their loop and return normally;
the launcher then reports success and ``trinity run`` exits 0. Seen on the H200: the trainer failed
in its first step (a missing package) and astuner reported a finished run. Ray copies both actors'
logs into the driver's output, which astuner keeps as ``trinity.log``, so the failure is read
there. ``tests/backbone/trinity/test_trinity_contract.py`` pins the two messages in Trinity's source.
"""

from __future__ import annotations

import re
from pathlib import Path

# Trinity's own words (trinity/trainer/trainer.py, trinity/explorer/explorer.py), and which part failed.
FAILURE_MARKS = {"Error in Trainer:": "trainer", "Error in Explorer:": "explorer"}
# What Ray and Trinity's logger put before a message: "(Trainer pid=1) ERROR 12-02 01:53:35 [trainer.py:156] "
COLOR = r"(?:\x1b\[[0-9;]*m)?"
PREFIX = re.compile(rf"^{COLOR}\(\w+ pid=\d+\){COLOR}\s*(?:\w+ [\d-]+ [\d:]+ \[[\w.]+:\d+\]\s?)?")
EXCEPTION = re.compile(r"^\w[\w.]*(?:Error|Exception|Exit|Interrupt)\b(?::|$)")


def swallowed_failure(log_path: Path) -> str | None:
    """One line for the first trainer or explorer failure in ``log_path`` (None when there is none).

    The line names the part that failed and the exception its traceback ends with.
    """
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines):
        part = next((who for mark, who in FAILURE_MARKS.items() if mark in line), None)
        if part is None:
            continue
        origin = line.split(")", 1)[0]  # the same actor's lines carry the same "(Name pid=N" prefix
        reason = "(no exception line)"
        for later in lines[i + 1 : i + 400]:
            if not later.startswith(origin):
                continue
            text = PREFIX.sub("", later).strip()
            if EXCEPTION.match(text):
                reason = text
                break
        return f"Trinity's {part} failed and Trinity exited 0 anyway: {reason} (traceback in {log_path})"
    return None
