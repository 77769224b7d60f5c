"""Files replaced in one rename: a reader sees the old file or the new one, never half of one.

Why one helper: a step's trajectories and the run's resolved config, the weights the engine reloads and the
optimizer state offloaded between updates are all read by another process or a later run, and a crash or an
exception while writing must leave neither a torn file nor a temporary behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_atomically(path: Path, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; it replaces ``path`` when the block ends without an exception.

    Args:
        path: the file to (re)place.
        fsync: flush the written file to disk before the rename (records that must survive a power cut);
            not for files that are only read while this process lives (it costs seconds on a GiB).
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if fsync:
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` durably and atomically."""
    with replaced_atomically(path, fsync=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
