"""The ``astuner`` command (also ``python launcher.py`` and ``python -m astuner``).

The CLI is the one place with side effects: it parses flags, composes and validates the config,
opens the experiment folder, sets up logging, and hands over to the chosen backbone. Every user
mistake ends here as ``astuner: error: ...`` lines and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from loguru import logger

from astuner.config.schema import BACKBONES

EXIT_CONFIG = 2

EPILOG = """\
examples:
  astuner --conf tutorial/example_math_agent/math_agent.yaml --dry-run
      compose and validate the config, print it resolved, start nothing
  astuner --conf tutorial/example_math_agent/math_agent.yaml --backbone=debug astuner.rollout.num_repeat=8
      train in this process (no Ray), overriding one key
  astuner --conf tutorial/example_math_agent/math_agent.yaml --backbone=trinity --with-ray
      train with Trinity-RFT on a local Ray head owned by astuner
  astuner --conf my.yaml --exp-dir /data/records --resume
      continue /data/records/my/
  astuner --conf tutorial/example_math_agent/math_agent.yaml --with-logview
      train and serve the trajectory viewer next to the run (its URL is printed)
  astuner logview launcher_record/math_agent
      view any past or running experiment (see: astuner logview --help)

Records go to launcher_record/<experiment>/ (experiment = the YAML's file name without .yaml,
or astuner.experiment_name): config.yaml, astuner.log, metrics.jsonl, trajectories/, checkpoints/.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="astuner",
        description="Fine-tune the LLM behind an AgentScope agent with reinforcement learning.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--conf",
        required=True,
        metavar="YAML",
        help="experiment YAML, e.g. --conf tutorial/example_math_agent/math_agent.yaml",
    )
    p.add_argument(
        "--backbone",
        choices=BACKBONES,
        default=None,
        help="where training runs (default: astuner.backbone, which defaults to debug); e.g. --backbone=verl",
    )
    p.add_argument(
        "--with-ray",
        action="store_true",
        help="start a local Ray head owned by this run and stop it at exit (verl, trinity); "
        "without it an existing cluster (RAY_ADDRESS) is used",
    )
    p.add_argument(
        "--with-logview",
        action="store_true",
        help="serve the token-level trajectory viewer next to the run (a free port on 127.0.0.1; the URL is printed)",
    )
    p.add_argument(
        "--logview-host",
        metavar="ADDR",
        default="127.0.0.1",
        help="bind address of --with-logview, e.g. --logview-host 0.0.0.0 (anyone who reaches the machine can read "
        "the trajectories; a warning is printed)",
    )
    p.add_argument(
        "--exp-dir",
        metavar="DIR",
        default=None,
        help="records root instead of ./launcher_record, e.g. --exp-dir /data/records",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="plan the run and print the config it will write (astuner's resolved config; with --backbone=verl or "
        "trinity: the backbone's translated config, after the backbone's own config check), then exit 0 "
        "(starts nothing, writes nothing)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the experiment already recorded under <records root>/<experiment>/",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="Hydra-style overrides, e.g. astuner.rollout.num_repeat=8 "
        "(prefix + to add a key: +trinity.monitor.monitor_type=tensorboard)",
    )
    return p


def _fail(lines: list[str] | str, code: int = EXIT_CONFIG) -> int:
    for line in [lines] if isinstance(lines, str) else lines:
        print(f"astuner: error: {line}", file=sys.stderr)
    return code


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every `finally` (child processes, locks) runs.
    raise KeyboardInterrupt(f"signal {signum}")


def _setup_console_logging() -> None:
    logger.remove()
    logger.add(sys.stderr, level="INFO", format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code: 0 ok, 1 a failed run, 2 bad input (flags, config), 130 interrupted."""
    from astuner.backbone import get_backbone
    from astuner.backbone.handover import BACKBONE_ENVS, find_backbone_python, hand_over, installed_here
    from astuner.config.errors import ConfigError
    from astuner.config.load import load_config

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["logview"]:
        from astuner.logview.cli import main as logview_main

        return logview_main(argv[1:])
    args = build_parser().parse_args(argv)
    _setup_console_logging()
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        loaded = load_config(args.conf, args.overrides, args.backbone, cwd=Path.cwd())
    except ConfigError as exc:
        return _fail([str(i) for i in exc.issues])
    env = BACKBONE_ENVS.get(loaded.backbone)
    if env is not None and not installed_here(env.package):  # the backbone lives in its own environment
        python = find_backbone_python(env)
        if python is None:
            return _fail(env.missing_message(loaded.backbone))
        logger.info(f"{env.package} is not installed in this Python; handing over to {python}")
        return hand_over(python, argv)
    records_root = Path(args.exp_dir).expanduser().resolve() if args.exp_dir else loaded.cwd / "launcher_record"
    try:
        backbone = get_backbone(loaded.backbone)
        plan = backbone.plan(loaded, records_root / loaded.experiment_name, with_ray=args.with_ray)
    except ConfigError as exc:
        return _fail([str(i) for i in exc.issues])
    for w in plan.warnings:
        logger.warning(w)
    if args.dry_run:
        sys.stdout.write(plan.config_text)
        for line in plan.summary():
            logger.info(line)
        return 0
    if loaded.backbone == "debug" and loaded.astuner.debug.replay:
        return _replay(loaded)
    for line in plan.notes:
        logger.info(line)
    return _run(args, loaded, backbone, plan, records_root)


def _replay(loaded) -> int:
    """``astuner.debug.replay=<step file>``: re-run a recorded step with no engine; writes no records.

    Exit 0 when every episode came out as recorded, 1 when one differs, 2 when it cannot replay."""
    from astuner.replay import ReplayError, replay_step
    from astuner.task_reader import TaskReaderError

    path = Path(loaded.astuner.debug.replay).expanduser()
    path = path if path.is_absolute() else loaded.cwd / path
    try:
        report = replay_step(loaded, path)
    except (ReplayError, TaskReaderError) as exc:
        return _fail(str(exc))
    for line in report.lines():
        (logger.info if report.identical else logger.warning)(line)
    return 0 if report.identical else 1


def _run(args: argparse.Namespace, loaded, backbone, plan, records_root: Path) -> int:
    """Open the records and run the plan; every failure ends as one line (the traceback goes to the log)."""
    from astuner.backbone import run_backbone
    from astuner.config.errors import ConfigError
    from astuner.model import EmbeddedModelError, ModelPathError
    from astuner.processes import ProcessStartError
    from astuner.records import RecordsError, open_experiment
    from astuner.rollout.runner import RolloutFailingError, RolloutHangError
    from astuner.task_reader import TaskReaderError

    try:
        experiment = open_experiment(records_root, loaded.experiment_name, args.resume)
    except RecordsError as exc:
        return _fail(str(exc))
    with experiment:
        experiment.write_config(loaded.to_yaml())
        logger.add(experiment.log_path, level="DEBUG", enqueue=False)
        logger.info(f"experiment {loaded.experiment_name}: records in {experiment.root}")
        viewer = _start_logview(experiment.root, args.logview_host) if args.with_logview else None
        try:
            return run_backbone(backbone, plan, loaded, experiment)
        except (TaskReaderError, ConfigError, ModelPathError, EmbeddedModelError) as exc:
            return _fail(str(exc))
        except ProcessStartError as exc:  # vLLM, the env service, the Ray head, a backbone's launcher
            return _fail(str(exc), code=1)
        except RolloutHangError as exc:
            return _fail(f"{exc}; the step failed and the run stopped (records kept; --resume continues)", code=1)
        except RolloutFailingError as exc:
            return _fail(f"{exc} (records kept; --resume continues once the cause is fixed)", code=1)
        except KeyboardInterrupt:
            logger.warning("interrupted; records kept in {}", experiment.root)
            return 130
        except Exception as exc:  # a bug in user code (or ours) outside an episode: one line here, all in the log
            logger.opt(exception=exc).debug("the run failed")
            return _fail(
                f"the run failed: {type(exc).__name__}: {exc} (traceback in {experiment.log_path}; records kept)",
                code=1,
            )
        finally:
            if viewer is not None:
                viewer.close()


def _start_logview(root: Path, host: str):
    """Start the viewer next to the run; a viewer that cannot start costs a warning, not the run."""
    from astuner.logview.cli import bind_warning
    from astuner.logview.process import LogviewProcess
    from astuner.processes import ProcessStartError

    viewer = LogviewProcess(root, root / "logview.log", host=host)
    try:
        url = viewer.start()
    except ProcessStartError as exc:
        logger.warning(f"--with-logview: {exc}")
        return None
    if bind_warning(host):
        logger.warning(bind_warning(host))
    logger.info(f"logview: {url}  (stopped with the run; later: astuner logview {root})")
    return viewer


if __name__ == "__main__":
    sys.exit(main())
