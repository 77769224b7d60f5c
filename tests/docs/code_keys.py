"""String keys that functions put into dicts, read from the source (what a record or metrics line holds).

Why from the source: the metrics and record fields are written in several functions, some of which need a
model, an engine or a GPU to run; their keys are plain string literals, so reading them needs none.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO


def _key(node: ast.expr) -> str | None:
    """A literal string key, or an f-string key as a pattern (``f"rate/{tool}"`` -> ``rate/<tool>``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) else f"<{ast.unparse(v.value)}>"  # type: ignore[attr-defined]
            for v in node.values
        )
    return None


def dict_keys(path: str, *functions: str) -> set[str]:
    """Every string key of a dict literal, and of ``x["key"] = ...``, inside the named functions of ``path``
    (an f-string key as its pattern, e.g. ``tool_use_rate/<tool>``)."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in functions]
    assert {f.name for f in found} == set(functions), (
        f"{path}: no function named {set(functions) - {f.name for f in found}}"
    )
    keys: set[str] = set()
    for function in found:
        for node in ast.walk(function):
            if isinstance(node, ast.Dict):
                keys |= {key for k in node.keys if k is not None and (key := _key(k)) is not None}
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Subscript) and (key := _key(t.slice)) is not None:
                        keys.add(key)
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
