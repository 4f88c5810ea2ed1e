"""Atomic writes: a failed write leaves neither the output nor a temporary file; a good one replaces the old."""

import pytest

from ran.atomic import atomic_path, write_text_atomic


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_successful_write_replaces_the_previous_file(tmp_path):
    target = tmp_path / "table.md"
    write_text_atomic(target, "old")
    assert write_text_atomic(target, "new") == target
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["table.md"]
    assert target.stat().st_mode & 0o044  # readable like any other output, not mkstemp's private 0600
