"""One `ran train` of a run at a time, whichever engine started it: an exclusive lock on a file in its folder.

Snakemake and DVC know nothing of each other, so two engines (or two Snakemake calls) started together would both
train the same run into the same checkpoint and model folders. `fcntl.flock` makes the second one stop at once; the
kernel releases the lock when its holder exits or crashes, so a lock file left behind never blocks anyone. The file
holds the holder's pid and command line only so that the refusal can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
from pathlib import Path
from typing import IO

LOCK_FILE = ".lock"


class LockHeld(RuntimeError):
    """Another process holds the lock; the message names it and what to do."""


def hold_lock(directory: str | Path) -> IO[str]:
    """Take `directory/.lock` exclusively without waiting; the returned open file (a context manager) holds the lock
    until it is closed or the process ends. Raises LockHeld, naming the holder, when another process has it."""
    path = Path(directory) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # "a+": opening must not erase the holder's record
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _holder(handle.read())
        handle.close()
        raise LockHeld(f"{path} is held by {holder}, which is training this run into the same folders (two engines "
                       f"started together?): wait for it to finish or stop it, then rerun") from None
    handle.truncate(0)
    handle.write(json.dumps({"pid": os.getpid(), "command": shlex.join(sys.orig_argv)}) + "\n")
    handle.flush()
    return handle


def _holder(record: str) -> str:
    try:
        found = json.loads(record)
        return f"pid {int(found['pid'])} ({found['command']})"
    except (ValueError, KeyError, TypeError):  # the holder took the lock and has not written its record yet
        return "another process (its pid is not written yet)"
