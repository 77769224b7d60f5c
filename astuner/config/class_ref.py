"""Resolve the class references a YAML names: ``package.module->Class`` or ``path/to/file.py->Class``.

A reference is resolved against the YAML's own folder first and the working directory second, so
the same YAML works from any directory. For a dotted module ``a.b.c`` the YAML's folder and its
parents are tried as the import root (``<root>/a/b/c.py``), which lets a YAML inside a package
name its workflow either as ``workflow->Cls`` or ``pkg.sub.workflow->Cls``.

The root that holds the user's module is put on ``sys.path`` (logged): user workflows import their
sibling modules the way ``python workflow.py`` would let them, and Ray workers of the verl/Trinity
backbones re-import the class by the same module name.

Errors say what was searched and suggest near matches, e.g. the class found in a sibling file.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from loguru import logger


class ClassRefError(ValueError):
    """A reference that cannot be resolved; the message says why and what was searched."""


@dataclass(frozen=True)
class ClassRef:
    """A parsed reference.

    Attributes:
        module: dotted module name to import.
        qualname: class name inside the module.
        root: folder to put on ``sys.path`` (None for installed modules).
    """

    module: str
    qualname: str
    root: Path | None

    def __str__(self) -> str:
        return f"{self.module}->{self.qualname}"


def _split(ref: str) -> tuple[str, str]:
    if "->" not in ref:
        raise ClassRefError(f"'{ref}' is not of the form 'module.path->Class' or 'path/to/file.py->Class'")
    target, _, name = ref.rpartition("->")
    target, name = target.strip(), name.strip()
    if not target or not name.isidentifier():
        raise ClassRefError(f"'{ref}' is not of the form 'module.path->Class' or 'path/to/file.py->Class'")
    return target, name


def _classes_in_file(path: Path) -> list[str]:
    """Top-level class names of a Python file, read without importing it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef)]


def _sibling_hint(folder: Path, name: str, root: Path | None, base: Path) -> str:
    """Find ``class name`` in the .py files of ``folder`` and phrase it as a reference."""
    if not folder.is_dir():
        return ""
    for py in sorted(folder.glob("*.py")):
        if name in _classes_in_file(py):
            if root is not None:
                rel = py.relative_to(root).with_suffix("")
                return f"; class {name} is in {py}: did you mean '{'.'.join(rel.parts)}->{name}'?"
            return f"; class {name} is in {py}: did you mean '{_display(py, base)}->{name}'?"
    return ""


def _display(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _module_file(root: Path, module: str) -> Path | None:
    stem = root.joinpath(*module.split("."))
    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def parse_class_ref(ref: str, yaml_dir: Path, cwd: Path) -> ClassRef:
    """Locate the module of ``ref`` without importing it.

    Raises:
        ClassRefError: nothing matches; the message lists the places searched.
    """
    target, name = _split(ref)
    if target.endswith(".py") or "/" in target or "\\" in target:
        tried = []
        for base in (yaml_dir, cwd):
            path = (base / target).expanduser().resolve()
            tried.append(str(path))
            if path.is_file():
                if name not in _classes_in_file(path):
                    close = difflib.get_close_matches(name, _classes_in_file(path), n=1)
                    hint = (
                        f"; did you mean '{target}->{close[0]}'?"
                        if close
                        else _sibling_hint(path.parent, name, None, base)
                    )
                    raise ClassRefError(f"'{ref}': {path} defines no class {name}{hint}")
                return ClassRef(path.stem, name, path.parent)
        hint = _sibling_hint((yaml_dir / target).parent, name, None, yaml_dir)
        raise ClassRefError(f"'{ref}': file not found (searched {', '.join(tried)}){hint}")

    if not all(part.isidentifier() for part in target.split(".")):
        raise ClassRefError(f"'{ref}': '{target}' is not a dotted module name")
    depth = target.count(".")
    roots = list(dict.fromkeys(r.resolve() for r in [yaml_dir, *list(yaml_dir.parents)[:depth], cwd]))
    for root in roots:
        if _module_file(root, target) is not None:
            return ClassRef(target, name, root)
    if importlib.util.find_spec(target.split(".")[0]) is not None:
        return ClassRef(target, name, None)  # an installed package
    hints = [_sibling_hint(root.joinpath(*target.split(".")[:-1]), name, root, cwd) for root in roots]
    searched = ", ".join(str(root.joinpath(*target.split("."))) + ".py" for root in roots)
    raise ClassRefError(f"'{ref}': module '{target}' not found (searched {searched}){next(filter(None, hints), '')}")


def load_class(ref: ClassRef) -> type:
    """Import the module of ``ref`` and return the class.

    Raises:
        ClassRefError: the module fails to import (its own error is included) or lacks the class.
    """
    if ref.root is not None and str(ref.root) not in sys.path:
        logger.debug(f"adding {ref.root} to sys.path to import {ref.module}")
        sys.path.insert(0, str(ref.root))
    try:
        module = importlib.import_module(ref.module)
    except Exception as exc:  # the user's module raised while importing: report it on one line
        raise ClassRefError(f"'{ref}': importing {ref.module} failed: {type(exc).__name__}: {exc}") from exc
    expected = _module_file(ref.root, ref.module) if ref.root is not None else None
    actual = getattr(module, "__file__", None)
    if expected is not None and (actual is None or Path(actual).resolve() != expected.resolve()):
        raise ClassRefError(
            f"'{ref}': the name '{ref.module}' is already taken by {actual or 'a built-in module'}, "
            f"not {expected}; rename your module"
        )
    cls = getattr(module, ref.qualname, None)
    if not isinstance(cls, type):
        names = [n for n, v in vars(module).items() if isinstance(v, type)]
        close = difflib.get_close_matches(ref.qualname, names, n=1)
        hint = f"; did you mean '{ref.module}->{close[0]}'?" if close else ""
        raise ClassRefError(f"'{ref}': module {ref.module} has no class {ref.qualname}{hint}")
    return cls


def resolve_class(ref: str, yaml_dir: Path, cwd: Path) -> type:
    """Parse and import a reference in one call (see ``parse_class_ref`` and ``load_class``)."""
    return load_class(parse_class_ref(ref, yaml_dir, cwd))
