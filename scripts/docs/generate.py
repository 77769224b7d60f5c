"""Regenerate the documentation site's generated files, or check that the committed ones are current.

    python scripts/docs/generate.py           # rewrite them
    python scripts/docs/generate.py --check   # exit 1 naming each stale file (what the tests check)

Why: the config and CLI references and the merge figure are rendered from the code (the schema, the
argument parsers, the merge); editing the code and forgetting to regenerate must fail, not drift.
Run from anywhere; paths are relative to the repository root.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

import cli_reference  # noqa: E402
import config_reference  # noqa: E402
import merge_figure  # noqa: E402

# each generated file (relative to the repository root) and the function that renders it
ARTIFACTS: dict[Path, Callable[[], str]] = {
    config_reference.PAGE: config_reference.render,
    cli_reference.PAGE: cli_reference.render,
    merge_figure.PAGE: merge_figure.render,
}


def stale(rendered: dict[Path, str], root: Path = REPO) -> list[Path]:
    """The files whose committed text differs from ``rendered`` (or that are missing)."""
    return [p for p, text in rendered.items() if not (root / p).is_file() or (root / p).read_text("utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    rendered = {path: render() for path, render in ARTIFACTS.items()}
    if args.check:
        old = stale(rendered)
        for path in old:
            print(f"{path} is stale: run python scripts/docs/generate.py", file=sys.stderr)
        return 1 if old else 0
    for path, text in rendered.items():
        (REPO / path).parent.mkdir(parents=True, exist_ok=True)
        (REPO / path).write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
