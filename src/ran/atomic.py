"""Atomic file writes shared by every command: an output either exists complete or not at all.

Each writer fills a temporary file in the target's own folder and renames it onto the target (atomic on one file
system), so a crash or a kill never leaves a half-written file that Snakemake, DVC or a resumed run could take as
valid.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _file_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is synced and renamed onto `path`, on error deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp = Path(temp)
    os.chmod(temp, _file_mode())  # mkstemp makes the file private; outputs get the usual permissions
    try:
        yield temp
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())  # the data is on disk before the name points at it
        os.replace(temp, path)
    except OSError as error:
        if error.filename is None:  # a failed write() names no file: name the output (e.g. disk full)
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise
    finally:
        temp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))
