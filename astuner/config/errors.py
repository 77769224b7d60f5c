"""Config errors: collected, then reported together, one line each.

A user mistake in a YAML must come back as a line that names the file, the key, the bad value and
what is allowed. ``ConfigError`` carries every problem found in one pass so the user fixes them
all at once instead of one per run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One problem with one key.

    Args:
        key: dotted key path, e.g. ``astuner.rollout.num_repeat``.
        message: what is wrong and what is allowed.
        source: where the key was set (a file path, ``command line`` or ``defaults``).
    """

    key: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.key}: {self.message}"


class ConfigError(Exception):
    """One or more config problems; ``str()`` gives one line per problem."""

    def __init__(self, issues: list[ConfigIssue] | ConfigIssue):
        self.issues = [issues] if isinstance(issues, ConfigIssue) else list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))
