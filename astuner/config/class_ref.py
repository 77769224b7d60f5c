"""Resolve the class references a YAML names: ``package.module->Class`` or ``path/to/file.py->Class``.

A reference is resolved against the YAML's own folder first and the working directory second, so
the same YAML works from any directory. For a dotted module ``a.b.c`` the YAML's folder and its
parents are tried as the import root (``<root>/a/b/c.py``), which lets a YAML inside a package
name its workflow either as ``workflow->Cls`` or ``pkg.sub.workflow->Cls``.

The root that holds the user's module is put on ``sys.path`` (logged): user workflows import their
sibling modules the way ``python workflow.py`` would let them, and Ray workers of the verl/Trinity
backbones re-import the class by the same module name.

Errors say what was searched and suggest near matches: a close class name, or the module or file
beside the named one that defines the class (the seed tutorial names ``math_agent.math_agent->
MathAgentWorkflow`` for a class in ``math_agent/workflow.py``). Sibling files are read as source
text, never imported, so looking for a hint runs no user code.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.machinery
import importlib.util
import re
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


def _classes_in_file(path: Path, only_if: str | None = None) -> list[str]:
    """Top-level class names of a Python file, read without importing it.

    ``only_if``: parse only a file whose text has ``class <only_if>`` at the start of a line (most
    sibling files do not, and are not parsed).
    """
    try:
        text = path.read_text(encoding="utf-8")
        if only_if is not None and not re.search(rf"^class\s+{re.escape(only_if)}\b", text, re.MULTILINE):
            return []
        tree = ast.parse(text)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef)]


def _sibling_defining(folder: Path, name: str, skip: Path | None = None) -> Path | None:
    """The first ``.py`` file of ``folder`` (sorted, ``skip`` left out) that defines ``class name``."""
    if not folder.is_dir():
        return None
    for py in sorted(folder.glob("*.py")):
        if py != skip and name in _classes_in_file(py, only_if=name):
            return py
    return None


def _sibling_hint(folder: Path, name: str, root: Path | None, base: Path, skip: Path | None = None) -> str:
    """Find ``class name`` in the .py files of ``folder`` and phrase it as a reference.

    ``root`` given: a dotted reference relative to that import root; else a file reference relative
    to ``base`` (the folder the user's path was relative to).
    """
    py = _sibling_defining(folder, name, skip)
    if py is None:
        return ""
    if root is not None:
        suggestion = ".".join(py.relative_to(root).with_suffix("").parts)
    else:
        suggestion = _display(py, base)
    return f"; class {name} is in {py}: did you mean '{suggestion}->{name}'?"


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


def _importable(target: str) -> bool:
    """Whether ``target`` is an installed module, found without importing anything.

    A top-level name that is a regular module or package counts (its submodules are its own
    business). A namespace package is any folder of that name on ``sys.path`` (the working
    directory under ``python -m``, a YAML's folder), so it counts only if ``target``'s file is
    really in one of its folders.
    """
    top, *rest = target.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin not in (None, "namespace") or not rest:
        return True
    suffixes = importlib.machinery.all_suffixes()
    for location in spec.submodule_search_locations or []:
        stem = Path(location).joinpath(*rest)
        if stem.is_dir() or any(stem.with_suffix(s).is_file() for s in suffixes):
            return True
    return False


def _file_ref(ref: str, target: str, name: str, yaml_dir: Path, cwd: Path) -> ClassRef:
    """``path/to/file.py->Class``: the file relative to the YAML's folder, then the working directory."""
    tried = []
    for base in (yaml_dir, cwd):
        path = (base / target).expanduser().resolve()
        tried.append(str(path))
        if not path.is_file():
            continue
        classes = _classes_in_file(path)
        if name in classes:
            return ClassRef(path.stem, name, path.parent)
        hint = _sibling_hint(path.parent, name, None, base, skip=path)
        if not hint:
            close = difflib.get_close_matches(name, classes, n=1)
            hint = f"; did you mean '{target}->{close[0]}'?" if close else ""
        raise ClassRefError(f"'{ref}': {path} defines no class {name}{hint}")
    hints = (_sibling_hint((base / target).expanduser().resolve().parent, name, None, base) for base in (yaml_dir, cwd))
    raise ClassRefError(f"'{ref}': file not found (searched {', '.join(tried)}){next(filter(None, hints), '')}")


def parse_class_ref(ref: str, yaml_dir: Path, cwd: Path) -> ClassRef:
    """Locate the module of ``ref`` without importing it.

    Raises:
        ClassRefError: nothing matches; the message lists the places searched and, where a
            sibling module or file defines the class, names it ("did you mean ...").
    """
    target, name = _split(ref)
    if target.endswith(".py") or "/" in target or "\\" in target:
        return _file_ref(ref, target, name, yaml_dir, cwd)
    if not all(part.isidentifier() for part in target.split(".")):
        raise ClassRefError(f"'{ref}': '{target}' is not a dotted module name")
    depth = target.count(".")
    roots = list(dict.fromkeys(r.resolve() for r in [yaml_dir, *list(yaml_dir.parents)[:depth], cwd]))
    for root in roots:
        if _module_file(root, target) is not None:
            return ClassRef(target, name, root)
    if _importable(target):
        return ClassRef(target, name, None)  # an installed package
    hints = [_sibling_hint(root.joinpath(*target.split(".")[:-1]), name, root, cwd) for root in roots]
    searched = ", ".join(str(root.joinpath(*target.split("."))) + ".py" for root in roots)
    raise ClassRefError(f"'{ref}': module '{target}' not found (searched {searched}){next(filter(None, hints), '')}")


def _dotted_sibling_hint(ref: ClassRef, folders: list[str], skip: Path | None = None) -> str:
    """A sibling of ``ref.module`` (same package) that defines the class, as a dotted reference."""
    package = ref.module.rpartition(".")[0]
    for folder in folders:
        py = _sibling_defining(Path(folder), ref.qualname, skip)
        if py is not None:
            suggestion = f"{package}.{py.stem}" if package else py.stem
            return f"; class {ref.qualname} is in {py}: did you mean '{suggestion}->{ref.qualname}'?"
    return ""


def _missing_module_hint(ref: ClassRef, exc: ModuleNotFoundError) -> str:
    """``ref.module`` itself missing from its (imported) package, not a dependency it imports."""
    if exc.name != ref.module or "." not in ref.module:
        return ""
    package = sys.modules.get(ref.module.rpartition(".")[0])
    return _dotted_sibling_hint(ref, list(getattr(package, "__path__", None) or []))


def load_class(ref: ClassRef) -> type:
    """Import the module of ``ref`` and return the class.

    Raises:
        ClassRefError: the module fails to import (its own error is included) or lacks the class.
    """
    root = str(ref.root) if ref.root is not None else None
    if root is not None and sys.path[:1] != [root]:
        # First, not just present: a folder put on sys.path earlier (another YAML's, the user's own) may hold
        # a module of the same name, and the reference means the one next to its YAML.
        logger.debug(f"putting {root} first on sys.path to import {ref.module}")
        if root in sys.path:
            sys.path.remove(root)
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(ref.module)
    except Exception as exc:  # the user's module raised while importing: report it on one line
        hint = _missing_module_hint(ref, exc) if isinstance(exc, ModuleNotFoundError) else ""
        raise ClassRefError(f"'{ref}': importing {ref.module} failed: {type(exc).__name__}: {exc}{hint}") from exc
    expected = _module_file(ref.root, ref.module) if ref.root is not None else None
    actual = getattr(module, "__file__", None)
    if expected is not None and (actual is None or Path(actual).resolve() != expected.resolve()):
        raise ClassRefError(
            f"'{ref}': the name '{ref.module}' is already taken by {actual or 'a built-in module'}, "
            f"not {expected}; rename your module"
        )
    cls = getattr(module, ref.qualname, None)
    if not isinstance(cls, type):
        here = Path(actual).resolve() if actual else None
        hint = _dotted_sibling_hint(ref, [str(here.parent)], skip=here) if here and here.name != "__init__.py" else ""
        if not hint:
            names = [n for n, v in vars(module).items() if isinstance(v, type)]
            close = difflib.get_close_matches(ref.qualname, names, n=1)
            hint = f"; did you mean '{ref.module}->{close[0]}'?" if close else ""
        raise ClassRefError(f"'{ref}': module {ref.module} has no class {ref.qualname}{hint}")
    return cls


def resolve_class(ref: str, yaml_dir: Path, cwd: Path) -> type:
    """Parse and import a reference in one call (see ``parse_class_ref`` and ``load_class``)."""
    return load_class(parse_class_ref(ref, yaml_dir, cwd))
