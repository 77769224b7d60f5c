"""The backbone protocol: a backbone first *plans* a run (pure), then *runs* exactly that plan.

Why two verbs: ``--dry-run`` must show what the run will do, not a look-alike. ``plan`` computes
everything from the loaded config alone (the backbone's final config text, the files to write, the
child's command and environment, where class references resolve, the warnings) and starts no
process and writes no file; ``--dry-run`` prints ``plan.config_text``; ``run`` writes exactly
``plan.config_text`` to ``plan.config_path`` and executes the rest. A test compares the two bytes.

What a plan cannot know is what only a running process can: the tasks a reader returns (written
as task files by ``run``) and the env server's port (bound into the run spec by ``run``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from astuner.backbone.spec import RunSpec
    from astuner.config.load import LoadedConfig
    from astuner.records import Experiment
    from astuner.task_reader.task import Task


@dataclass(frozen=True)
class ChildPlan:
    """The backbone's own launcher, run as a child process of astuner.

    Attributes:
        argv: the command (``sys.executable -m verl.trainer.main_ppo ...``).
        env: variables added to astuner's environment for it.
        log_name: its log, relative to the records.
        with_ray: start a local Ray head owned by the run first (``--with-ray``).
        progress: turns a line of the child's log into a line to show (or None).
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    log_name: str = "backbone.log"
    with_ray: bool = False
    progress: Callable[[str], str | None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BackbonePlan:
    """Everything a run will do, computed before anything starts.

    Attributes:
        backbone: its name (``debug``, ``verl``, ``trinity``).
        records_dir: the experiment's records folder (absolute).
        config_path: where the run writes the backbone's config (``config_text``, byte for byte).
        config_text: the backbone's final config: what ``--dry-run`` prints.
        files: other files the run writes before it starts (path -> text).
        task_files: where the run writes the training / validation tasks it reads (None: not written).
        run_spec: what the backbone's workers rebuild astuner's rollout from (None: no workers).
        run_spec_path: where the run writes ``run_spec`` (after binding runtime values).
        child: the backbone's own launcher (None: the run stays in this process).
        class_roots: the folders class references resolve against (the YAML's folder, the CLI's cwd).
        model_path: the policy model as the backbone is given it (see ``planned_model_path``).
        warnings: one line each, shown before the run (and by the dry run).
        notes: facts about the plan worth a line (e.g. the cluster a check assumed).
    """

    backbone: str
    records_dir: Path
    config_path: Path
    config_text: str
    files: Mapping[Path, str] = field(default_factory=dict)
    task_files: tuple[Path | None, Path | None] = (None, None)
    run_spec: RunSpec | None = None
    run_spec_path: Path | None = None
    child: ChildPlan | None = None
    class_roots: tuple[Path, Path] = (Path("/"), Path("/"))
    model_path: str = ""
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def summary(self) -> list[str]:
        """The plan in a few lines (the dry run logs them after the config)."""
        lines = [f"plan ({self.backbone}): config -> {self.config_path}"]
        lines += [f"  writes {p}" for p in self.files]
        lines += [f"  writes tasks -> {p}" for p in self.task_files if p is not None]
        if self.run_spec_path is not None:
            lines.append(f"  writes run spec -> {self.run_spec_path}")
        if self.child is not None:
            ray = " (on a Ray head owned by this run)" if self.child.with_ray else ""
            lines.append(f"  runs {' '.join(self.child.argv)}{ray}, log {self.records_dir / self.child.log_name}")
        lines.append(f"  model: {self.model_path}")
        return lines + list(self.notes)


@dataclass(frozen=True)
class RunInputs:
    """What ``run`` gets besides the plan: the values that exist only once the run has started.

    Attributes:
        loaded: the config, with runtime values bound (the env server's URL).
        experiment: the open records folder.
        train / val: the tasks the reader returned.
    """

    loaded: LoadedConfig
    experiment: Experiment
    train: list[Task]
    val: list[Task]


class Backbone(Protocol):
    """One training backbone. ``plan`` is pure; ``run`` executes exactly the plan it is given."""

    name: ClassVar[str]

    def plan(self, loaded: LoadedConfig, records_dir: Path, *, with_ray: bool = False) -> BackbonePlan:
        """Everything the run will do, from the config alone.

        Raises:
            ConfigError: the config cannot run on this backbone (one line per problem).
        """
        ...

    def run(self, plan: BackbonePlan, inputs: RunInputs) -> int:
        """Execute ``plan``; returns the process exit code."""
        ...
