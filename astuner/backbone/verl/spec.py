"""The run spec: what verl's workers need to rebuild astuner's rollout objects (no verl import here).

The launcher writes it as JSON into the records; the generated agent-loop YAML passes its path to
``AstunerAgentLoop`` as the one constructor keyword astuner adds (``astuner_run``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

from astuner.config.schema import AstunerConfig

AGENT_LOOP_CLASS = "astuner.backbone.verl.agent_loop.AstunerAgentLoop"


@dataclasses.dataclass
class RunSpec:
    """Attributes:
    astuner: the validated ``astuner:`` tree (paths already absolute).
    yaml_dir / cwd: where class references (``module->Class``, ``file.py->Class``) resolve.
    trajectories_dir: where episodes are recorded.
    """

    astuner: dict[str, Any]
    yaml_dir: str
    cwd: str
    trajectories_dir: str

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1, default=str), encoding="utf-8")
        return path

    def config(self, origin: str) -> AstunerConfig:
        from astuner.config.validate import validate_astuner_tree

        return validate_astuner_tree(self.astuner, lambda _key: origin)


@functools.lru_cache(maxsize=4)
def load_spec(path: str) -> tuple[RunSpec, AstunerConfig]:
    """The spec at ``path`` and its validated config (once per worker process)."""
    spec = RunSpec(**json.loads(Path(path).read_text(encoding="utf-8")))
    return spec, spec.config(path)
