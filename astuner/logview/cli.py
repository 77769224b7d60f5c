"""``astuner logview <experiment folder>``: open any past or running experiment, read-only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from astuner.logview.records import is_experiment_dir

EXAMPLES = """examples:
  astuner logview launcher_record/math_agent            view an experiment (http://127.0.0.1:<free port>/)
  astuner logview launcher_record/math_agent --port 8765
  astuner logview launcher_record/math_agent --host 0.0.0.0   reachable from other machines (prints a warning)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="astuner logview",
        description="A local, token-level viewer of an experiment's trajectories (read-only; works during a run).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("experiment", help="an experiment folder, e.g. launcher_record/<experiment>")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free one, printed at start)")
    p.add_argument("--announce", action="store_true", help=argparse.SUPPRESS)  # used by --with-logview
    return p


def check_experiment_dir(folder: Path) -> str | None:
    """None if ``folder`` is an experiment folder, else a one-line error saying what to pass."""
    if not folder.is_dir():
        return f"logview: {folder} is not a folder; pass launcher_record/<experiment>"
    if is_experiment_dir(folder):
        return None
    inside = sorted(p.name for p in folder.iterdir() if p.is_dir() and is_experiment_dir(p))
    hint = f"; experiments inside it: {', '.join(inside[:10])}" if inside else ""
    return f"logview: {folder} is not an experiment folder (no config.yaml or trajectories/){hint}"


def bind_warning(host: str) -> str | None:
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (
        f"logview: listening on {host}: anyone who can reach this machine can read these trajectories "
        "(they hold prompts, answers and tool outputs); use --host 127.0.0.1 to keep them local"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = Path(args.experiment).expanduser().resolve()
    problem = check_experiment_dir(folder)
    if problem:
        sys.stderr.write(problem + "\n")
        return 2
    if not 0 <= args.port <= 65535:
        sys.stderr.write(f"logview: --port must be in 0..65535, not {args.port}\n")
        return 2
    from astuner.logview.server import make_server

    try:
        server = make_server(folder, args.host, args.port)
    except OSError as exc:
        sys.stderr.write(f"logview: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
        return 2
    warning = bind_warning(args.host)
    if warning:
        sys.stderr.write(warning + "\n")
    if args.announce:
        sys.stdout.write(f"{server.url}\n")
        sys.stdout.flush()
    else:
        sys.stdout.write(f"logview of {folder}: {server.url}  (Ctrl-C to stop)\n")
        sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
