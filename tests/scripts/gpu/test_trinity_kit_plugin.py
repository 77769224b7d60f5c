"""The GPU kit's Trinity plugin puts flash-attn's padding helpers on the path of Trinity's trainer process only.

Run with Trinity's real plugin loader in ``.venv-trinity`` (Trinity is not importable in ``.venv``): loaded in
a process holding Trinity's trainer it appends the helpers' folder; in any other process (the explorer,
the launcher) it changes nothing, so the vLLM engine never finds a ``flash_attn`` module through it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLUGIN_DIR = REPO / "scripts/gpu/flash_attn_padding/trinity_plugin"
TRINITY_PYTHON = Path(os.environ.get("ASTUNER_TRINITY_PYTHON") or REPO / ".venv-trinity/bin/python")


@pytest.mark.parametrize("trainer_process", [True, False])
def test_helpers_only_in_the_trainer_process(tmp_path, trainer_process):
    code = "\n".join(
        [
            "import sys",
            "import trinity.trainer.trainer" if trainer_process else "import trinity.explorer.explorer",
            "from trinity.utils.plugin_loader import load_plugin_from_dirs",
            f"load_plugin_from_dirs([{str(PLUGIN_DIR)!r}])",
            f"print({str(tmp_path)!r} in sys.path)",
        ]
    )
    env = {**os.environ, "ASTUNER_FLASH_ATTN_PADDING": str(tmp_path)}
    proc = subprocess.run([str(TRINITY_PYTHON), "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(trainer_process)
