"""Code on the site comes from tested files, and every command it shows is one astuner accepts.

Python, YAML and JSON blocks must include their code (``--8<-- "path"`` or ``"path:section"``) from
files the tests run, so a page cannot drift from the code. Shell blocks may be written in a page,
but each ``astuner`` command in them is parsed with the real argument parser, and its config loaded
(overrides included) when it names a YAML of this repository.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from astuner.cli import build_parser
from astuner.config.load import load_config
from astuner.logview.cli import build_parser as build_logview_parser
from tests.conftest import REPO
from tests.docs.conftest import DOCS

INCLUDED_LANGUAGES = {"python", "yaml", "json", "toml"}
SNIPPET = re.compile(r'^--8<-- "[^"]+"$')
SCAFFOLD = {"astuner:", "# ...", "#..."}  # a parent key or an elision around included lines
GENERATED = {DOCS / "reference" / "cli.md"}  # rendered from the parser itself


@dataclass
class Block:
    where: str
    language: str
    lines: list[str]


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown file, also those indented inside admonitions."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if current is None and stripped.startswith("```"):
            current, start = Block(f"{path.relative_to(REPO)}:{number}", stripped[3:].split(" ")[0], []), number
        elif current is not None and stripped == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current.lines.append(stripped)
    assert current is None, f"{path}:{start}: unclosed code block"
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv after the program) for every astuner command in a shell block of the docs or README."""
    out = []
    for path in [REPO / "README.md", *pages()]:
        if path in GENERATED:
            continue
        for block in code_blocks(path):
            if block.language not in ("bash", "sh", "shell", "console", ""):
                continue
            for line in _joined(block.lines):
                words = shlex.split(line.removeprefix("$ "), comments=True)
                for cut in (">", "|", "&&", ";"):
                    words = words[: words.index(cut)] if cut in words else words
                skip = _program_words(words)
                if skip:
                    out.append((block.where, words[skip:]))
    return out


def _joined(lines: list[str]) -> list[str]:
    """Lines with backslash continuations joined."""
    out, pending = [], ""
    for line in lines:
        if line.endswith("\\"):
            pending += line[:-1] + " "
        else:
            out.append(pending + line)
            pending = ""
    return out


def _program_words(words: list[str]) -> int:
    """How many leading words name the program (0: not an astuner command)."""
    if words[:1] in (["astuner"], [".venv/bin/astuner"]):
        return 1
    if words[:2] == ["python", "launcher.py"] or words[:3] == ["python", "-m", "astuner"]:
        return 2 if words[1] == "launcher.py" else 3
    return 0


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_code_blocks_include_their_code_from_files(path):
    for block in code_blocks(path):
        if block.language not in INCLUDED_LANGUAGES:
            continue
        written = [line for line in block.lines if line and not SNIPPET.match(line) and line not in SCAFFOLD]
        assert not written, (
            f"{block.where}: a {block.language} block must include its code from a tested file, not {written[:2]}"
        )
        assert any(SNIPPET.match(line) for line in block.lines), f"{block.where}: an empty {block.language} block"


def _check_command(where: str, argv: list[str]) -> None:
    if argv[:1] == ["logview"]:
        build_logview_parser().parse_args(argv[1:])
        return
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: astuner {' '.join(argv)}: the parser refused it (exit {exc.code})")
    if (REPO / args.conf).is_file():
        with _fresh_tutorial_modules():
            load_config(args.conf, args.overrides, args.backbone, cwd=REPO)


@contextlib.contextmanager
def _fresh_tutorial_modules() -> Iterator[None]:
    """Each command runs in a process of its own; here they share one, so a tutorial's ``workflow`` module
    imported by one load would be taken for another's. Hide those modules during a load, then put back."""

    def tutorial_modules() -> dict[str, object]:
        root = str(REPO / "tutorial")
        return {n: m for n, m in sys.modules.items() if (getattr(m, "__file__", None) or "").startswith(root)}

    hidden, path = tutorial_modules(), list(sys.path)
    for name in hidden:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in tutorial_modules():
            del sys.modules[name]
        sys.modules.update(hidden)
        sys.path[:] = path


@pytest.mark.parametrize(("where", "argv"), commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_shown_commands_parse_and_their_configs_load(where, argv):
    _check_command(where, argv)


def test_there_are_commands_to_check():
    assert len(commands()) >= 10


def test_the_vscode_launch_configuration_runs():
    """The tutorial includes .vscode/launch.json; its arguments must be a valid astuner command."""
    for config in json.loads((REPO / ".vscode" / "launch.json").read_text())["configurations"]:
        assert config["program"] == "launcher.py" and (REPO / config["program"]).is_file()
        _check_command(".vscode/launch.json", config["args"])
