"""Resumable training state: every model and optimizer variable plus the iteration reached, in one file.

The optimizer's variables include its iteration counter (hence the schedule position); the data order and the
augmentation draws are functions of (seed, iteration) (data.py), so no random state needs saving.

A torn write can never be the newest checkpoint: a new one is written completely beside the current one
(`state.next.npz`, synced), read back, and only then rotated in (`state.npz` -> `state.previous.npz`,
`state.next.npz` -> `state.npz`). Loading takes the readable checkpoint with the highest iteration among the three
names and says so when it had to pass over an unreadable one; with none readable, the error names every file.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from ran.atomic import atomic_path, write_text_atomic

STATE_FILE = "state.npz"
NEXT_FILE = "state.next.npz"
PREVIOUS_FILE = "state.previous.npz"
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError)
# Keys that only say how often to log and checkpoint: changing them between a kill and a resume changes no weight.
CADENCE_KEYS = ("log_every", "checkpoint_every")
_ABSENT = object()


class CheckpointError(ValueError):
    """No checkpoint in the folder can be read; the message names each file and what to do."""


def atomic_write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of one checkpoint file, every array read (zip CRCs checked)."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise ValueError("its meta record has no iteration")
    return meta, arrays


def save_state(directory: Path, model, optimizer, meta: dict) -> None:
    """Write a checkpoint: variables in creation order (stable for a model rebuilt from the same config)."""
    directory = Path(directory)
    arrays = {f"model_{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays |= {f"optimizer_{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_path(directory / NEXT_FILE) as temp, open(temp, "wb") as file:
        np.savez(file, **arrays)
    _read(directory / NEXT_FILE)  # read back before it replaces anything
    if (directory / STATE_FILE).exists():
        os.replace(directory / STATE_FILE, directory / PREVIOUS_FILE)
    os.replace(directory / NEXT_FILE, directory / STATE_FILE)


def newest_readable(directory: Path) -> tuple[Path, dict, dict[str, np.ndarray]] | None:
    """The readable checkpoint with the highest iteration (None when there is no checkpoint at all)."""
    directory = Path(directory)
    found, broken = [], []
    for name in (NEXT_FILE, STATE_FILE, PREVIOUS_FILE):
        path = directory / name
        if not path.is_file():
            continue
        try:
            found.append((path, *_read(path)))
        except UNREADABLE as error:
            broken.append(f"{path} ({type(error).__name__}: {error})")
    if not found and broken:
        raise CheckpointError(f"no checkpoint in {directory} can be read: {'; '.join(broken)}. Delete {directory} to "
                              f"start this seed afresh (its finished iterations are lost), or put back a copy.")
    if not found:
        return None
    path, meta, arrays = max(found, key=lambda item: item[1]["step"])
    if broken:
        print(f"train: warning: unreadable checkpoint {'; '.join(broken)}; resuming from {path} (iteration "
              f"{meta['step']}) instead", file=sys.stderr)
    return path, meta, arrays


def load_state(directory: Path, model, optimizer, check=None) -> dict | None:
    """Restore variables from the newest readable checkpoint; return its meta (None when starting fresh).

    `check(meta)` runs before any variable is touched, so a refusal names what differs rather than a variable count.
    """
    chosen = newest_readable(directory)
    if chosen is None:
        return None
    path, meta, arrays = chosen
    if check is not None:
        check(meta)
    for prefix, variables in (("model", model.variables), ("optimizer", optimizer.variables)):
        stored = sorted(key for key in arrays if key.startswith(prefix + "_"))
        if len(stored) != len(variables):
            raise CheckpointError(f"checkpoint {path} holds {len(stored)} {prefix} variables but the rebuilt {prefix} "
                                  f"has {len(variables)}; it belongs to another configuration or version: delete "
                                  f"{Path(directory)} to start this seed afresh")
        for key, variable in zip(stored, variables, strict=True):
            variable.assign(arrays[key])
    return meta


def resumable_identity(identity: dict) -> dict:
    """The identity a resume must match: the run's identity without the logging and checkpoint cadence."""
    if not isinstance(identity.get("training"), dict):
        return identity
    training = {key: value for key, value in identity["training"].items() if key not in CADENCE_KEYS}
    return {**identity, "training": training}


def identity_changes(old, new, prefix: str = "") -> list[str]:
    """`key: old -> new` for every leaf that differs, nested keys dotted (e.g. `training.base_lr: 0.1 -> 0.2`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(old.keys() | new.keys(), key=str)
        return [change for key in keys
                for change in identity_changes(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{prefix}{key}.")]
    if old == new:
        return []
    return [f"{prefix.removesuffix('.') or '(identity)'}: {_show(old)} -> {_show(new)}"]


def _show(value, limit: int = 40) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."
