"""Resumable training state: every model and optimizer variable plus the iteration reached, in one atomic file.

The optimizer's variables include its iteration counter (hence the schedule position); the data order and the
augmentation draws are functions of (seed, iteration) (data.py), so no random state needs saving. One checkpoint is
kept: `state.npz` is replaced atomically, so a kill at any moment leaves the previous complete one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ran.atomic import atomic_path, write_text_atomic

STATE_FILE = "state.npz"


def atomic_write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def save_state(directory: Path, model, optimizer, meta: dict) -> None:
    """Write `state.npz`: variables in creation order (stable for a model rebuilt from the same config)."""
    arrays = {f"model_{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays |= {f"optimizer_{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_path(Path(directory) / STATE_FILE) as temp, open(temp, "wb") as file:
        np.savez(file, **arrays)


def load_state(directory: Path, model, optimizer) -> dict | None:
    """Restore variables from `state.npz` if there is one; return its meta (None when starting fresh)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes().decode())
        for prefix, variables in (("model", model.variables), ("optimizer", optimizer.variables)):
            stored = sorted(key for key in data.files if key.startswith(prefix + "_"))
            if len(stored) != len(variables):
                raise ValueError(f"checkpoint {path} holds {len(stored)} {prefix} variables but the rebuilt "
                                 f"{prefix} has {len(variables)}; it belongs to another configuration: delete it")
            for key, variable in zip(stored, variables, strict=True):
                variable.assign(data[key])
    return meta
