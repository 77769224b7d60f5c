"""Turn the references in a validated config into things that exist: files and classes.

Relative paths are tried against the YAML's folder first, then the working directory, and are
replaced by absolute paths so nothing below the CLI depends on the working directory. Class
references are imported here, before any process starts, so a bad ``module->Class`` fails in a
dry run rather than after the inference engine has spent a minute loading.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from astuner.config.class_ref import ClassRefError, resolve_class
from astuner.config.errors import ConfigError, ConfigIssue
from astuner.config.schema import AstunerConfig

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+){0,2}$")
TASK_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def _looks_local(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value.endswith(TASK_FILE_SUFFIXES)


def find_local(value: str, yaml_dir: Path, cwd: Path) -> Path | None:
    """The first existing of ``yaml_dir/value`` and ``cwd/value`` (absolute), or None."""
    for base in (yaml_dir, cwd):
        path = (base / Path(value).expanduser()).resolve()
        if path.exists():
            return path
    return None


class _Resolver:
    def __init__(self, yaml_dir: Path, cwd: Path, source: Callable[[str], str]):
        self.yaml_dir, self.cwd, self.source = yaml_dir, cwd, source
        self.issues: list[ConfigIssue] = []

    def issue(self, key: str, message: str) -> None:
        self.issues.append(ConfigIssue(key, message, self.source(key)))

    def searched(self, value: str) -> str:
        return f"{(self.yaml_dir / value).resolve()} or {(self.cwd / value).resolve()}"

    def local_or_hub(self, key: str, value: str, what: str) -> str:
        """A local path (made absolute), a hub id (kept) or ``builtin:<name>``; anything else is an issue."""
        if value.startswith("builtin:") and key == "astuner.model.path":
            from astuner.model.embedded import EMBEDDED

            if value[len("builtin:") :] not in EMBEDDED:
                self.issue(
                    key,
                    f"= {value!r} is not an embedded model; available: " + ", ".join("builtin:" + n for n in EMBEDDED),
                )
            return value
        local = find_local(value, self.yaml_dir, self.cwd)
        if local is not None:
            return str(local)
        if _looks_local(value) or not HUB_ID.match(value):
            self.issue(key, f"= {value!r}: no such {what} (searched {self.searched(value)}) and not a hub id")
        return value

    def task_file(self, key: str, value: str | None) -> str | None:
        if value is None:
            return None
        local = find_local(value, self.yaml_dir, self.cwd)
        if local is None or not local.is_file():
            self.issue(key, f"= {value!r}: file not found (searched {self.searched(value)})")
            return value
        if local.suffix not in TASK_FILE_SUFFIXES:
            self.issue(key, f"= {value!r}: unsupported file type '{local.suffix}'; use {', '.join(TASK_FILE_SUFFIXES)}")
        return str(local)

    def class_ref(self, key: str, value: str | None, base: type, what: str) -> None:
        if value is None:
            return
        try:
            cls = resolve_class(value, self.yaml_dir, self.cwd)
        except ClassRefError as exc:
            self.issue(key, str(exc))
            return
        if not issubclass(cls, base):
            self.issue(
                key, f"= {value!r}: {cls.__qualname__} must subclass {base.__module__}.{base.__qualname__} ({what})"
            )


def resolve_references(cfg: AstunerConfig, yaml_dir: Path, cwd: Path, source: Callable[[str], str]) -> None:
    """Check and absolutise paths and import class references, in place.

    Raises:
        ConfigError: every reference that does not resolve.
    """
    from astuner.task_judge.base_judge import BaseJudge
    from astuner.workflow.base import Workflow

    r = _Resolver(yaml_dir, cwd, source)
    if cfg.model.path is not None:
        cfg.model.path = r.local_or_hub("astuner.model.path", cfg.model.path, "model folder")
    hf = cfg.task_reader.huggingface_dat_repo
    if cfg.task_reader.type == "huggingface_dat_repo" and hf.dataset_path:
        hf.dataset_path = r.local_or_hub(
            "astuner.task_reader.huggingface_dat_repo.dataset_path", hf.dataset_path, "dataset folder or file"
        )
    if cfg.task_reader.type == "dataset_file":
        df = cfg.task_reader.dataset_file
        df.training_path = r.task_file("astuner.task_reader.dataset_file.training_path", df.training_path)
        df.validation_path = r.task_file("astuner.task_reader.dataset_file.validation_path", df.validation_path)
    r.class_ref(
        "astuner.rollout.agentscope_workflow",
        cfg.rollout.agentscope_workflow,
        Workflow,
        "implement async execute(workflow_task, model_tuner) -> WorkflowOutput",
    )
    r.class_ref(
        "astuner.task_judge.judge_protocol",
        cfg.task_judge.judge_protocol,
        BaseJudge,
        "implement compute_reward(workflow_task, workflow_output) -> (reward, is_success)",
    )
    if r.issues:
        raise ConfigError(r.issues)
