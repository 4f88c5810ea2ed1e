"""Data that a profile's run selection does not need: small markers instead of downloads and arrays.

Both engines keep one DAG whatever the selection (DVC's `foreach` cannot filter by the profile), so a dataset that no
selected run trains on still has its download, prepare and noise steps; they write a marker saying why, in about a
second, and every later step that meets a marker does nothing either. A marker archive is a valid .tar.gz whose PAX
global header carries the reason; a marker folder holds `not_needed.json`. A run the profile leaves out gets
`not_selected.json` in its model folder, a note for a reader (which runs are selected is `ran.config`'s answer).
Every marker of the project is written here.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from ran.atomic import write_text_atomic
from ran.data.archive import write_deterministic_targz

NOT_NEEDED_HEADER = "RAN.not_needed"
NOT_NEEDED_FILE = "not_needed.json"
NOT_SELECTED_FILE = "not_selected.json"


def not_needed_reason(dataset: str, profile: str) -> str:
    return (f"profile {profile!r} selects no run that trains on {dataset} (profiles.{profile}.runs), so {dataset} "
            f"is not downloaded")


def write_not_needed_archive(out: str | Path, reason: str) -> Path:
    members = {"NOT_NEEDED.txt": (reason + "\n").encode()}
    write_deterministic_targz(out, members, pax_headers={NOT_NEEDED_HEADER: reason})
    return Path(out)


def archive_not_needed(archive: str | Path) -> str | None:
    """The reason a marker archive carries, or None for a data archive (only its first header block is read)."""
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            next(iter(tar), None)
            return tar.pax_headers.get(NOT_NEEDED_HEADER)
    except (tarfile.TarError, OSError, EOFError):
        return None  # not a marker; the caller's own checks report what is wrong with it


def mark_folder(folder: str | Path, reason: str) -> Path:
    Path(folder).mkdir(parents=True, exist_ok=True)
    return write_text_atomic(Path(folder) / NOT_NEEDED_FILE, json.dumps({"not_needed": reason}, indent=2) + "\n")


def folder_not_needed(folder: str | Path) -> str | None:
    path = Path(folder) / NOT_NEEDED_FILE
    return json.loads(path.read_text())["not_needed"] if path.is_file() else None


def mark_not_selected(out: str | Path, run_id: str, profile: str, selected: list[str], reason: str) -> Path:
    """Write OUT/not_selected.json (seed folders of an earlier selection are left as they are); the note is for a
    reader: `ran evaluate` asks params.yaml, since a note of an earlier selection may outlive it."""
    note = {"run": run_id, "profile": profile, "selected": selected, "reason": reason}
    Path(out).mkdir(parents=True, exist_ok=True)
    return write_text_atomic(Path(out) / NOT_SELECTED_FILE, json.dumps(note, indent=2) + "\n")
