"""Files replaced in one rename: the old file or the new one, never half of one, and no temporary left."""

from __future__ import annotations

import pytest

from astuner.records.atomic import atomic_write_text, replaced_atomically


def test_a_finished_write_replaces_the_file(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"old")
    with replaced_atomically(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path
        tmp.write_bytes(b"new")
        assert path.read_bytes() == b"old"  # readers see the old file until the block ends
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), replaced_atomically(path, fsync=True) as tmp:
        tmp.write_bytes(b"ha")
        raise OSError("disk full")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_atomic_write_text_creates_the_file(tmp_path):
    atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    assert (tmp_path / "config.yaml").read_text() == "a: 1\n" and len(list(tmp_path.iterdir())) == 1
