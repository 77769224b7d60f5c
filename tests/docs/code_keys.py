"""String keys that functions put into dicts, read from the source (what a record or metrics line holds).

Why from the source: the metrics and record fields are written in several functions, some of which need a
model, an engine or a GPU to run; their keys are plain string literals, so reading them needs none.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO


def dict_keys(path: str, *functions: str) -> set[str]:
    """Every string key of a dict literal, and of ``x["key"] = ...``, inside the named functions of ``path``."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in functions]
    assert {f.name for f in found} == set(functions), (
        f"{path}: no function named {set(functions) - {f.name for f in found}}"
    )
    keys: set[str] = set()
    for function in found:
        for node in ast.walk(function):
            if isinstance(node, ast.Dict):
                keys |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant):
                        keys.add(t.slice.value)
    return keys


def table_names(page: Path, heading: str | None = None) -> set[str]:
    """The backticked names in the first column of the tables of ``page`` (below ``heading`` only, if given)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    if heading is not None:
        start = lines.index(heading)
        level = heading.split(" ", 1)[0]
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].split(" ", 1)[0] in ("#", "##", level)), len(lines)
        )
        lines = lines[start + 1 : end]
    names: set[str] = set()
    for line in lines:
        cells = line.split("|")
        if len(cells) > 2 and not set(cells[1].strip()) <= set("-: "):
            names |= {part.strip().strip("`") for part in cells[1].split(",") if part.strip().startswith("`")}
    return names
