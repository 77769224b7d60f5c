"""The shipped default YAMLs: every key commented, and astuner_default equal to the schema."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from astuner.config.load import DEFAULT_FILES
from astuner.config.schema import AstunerConfig


def _keys_without_comment(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    missing = []
    for i, line in enumerate(lines):
        m = re.match(r"^\s*([A-Za-z_][\w]*):", line)
        if not m:
            continue
        inline = "#" in line.split(":", 1)[1]
        above = i > 0 and lines[i - 1].strip().startswith("#")
        if not (inline or above or m.group(1) in ("astuner", "trinity")):
            missing.append(f"{path.name}:{i + 1}: {m.group(1)}")
    return missing


@pytest.mark.parametrize("path", DEFAULT_FILES, ids=lambda p: p.name)
def test_every_default_key_has_a_comment(path):
    assert _keys_without_comment(path) == []


def test_astuner_default_yaml_equals_schema_defaults():
    shipped = yaml.safe_load(DEFAULT_FILES[0].read_text())["astuner"]
    assert shipped == dataclasses.asdict(AstunerConfig())


def _schema_help(cls=AstunerConfig, prefix="astuner") -> dict[str, str]:
    out = {}
    for f in dataclasses.fields(cls):
        out[f"{prefix}.{f.name}"] = f.metadata["help"].rstrip(".")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            out.update(_schema_help(type(default), f"{prefix}.{f.name}"))
    return out


def test_default_yaml_comments_match_schema_help():
    """The comment above each astuner key starts with the schema's help text (one source of truth)."""
    helps = _schema_help()
    lines = DEFAULT_FILES[0].read_text().splitlines()
    stack: list[tuple[int, str]] = []
    seen = set()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([a-z_][a-z0-9_]*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        stack = [(d, k) for d, k in stack if d < indent] + [(indent, m.group(2))]
        path = ".".join(k for _, k in stack)
        if path in helps:
            comment = lines[i - 1].strip().lstrip("#").strip()
            assert comment.startswith(helps[path].split(";")[0].split(":")[0]), (path, comment)
            seen.add(path)
    assert seen == set(helps)
