"""Where a result came from: code version, library versions and the device (train.json; STYLE "Experiments").

Provenance never costs a result: every probe here catches its own failures and records "unknown" with the reason,
and `ran train` takes the snapshot before the first iteration, not after the last.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import keras

from ran.runtime import cpu_isa

PACKAGE = "residual-attention-replication"
# params.yaml is where a user points the workflow at a local data copy; its effect on a run (training config, data
# hashes) is recorded in full, so a change there is reported apart from changes to the code.
PARAMS_FILE = "params.yaml"


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def code_state() -> dict:
    """The git commit of the checkout holding this package and its uncommitted changes, or why it is unknown.

    `code_dirty` counts changes to anything but params.yaml (listed in `params_modified`); untracked files count.
    """
    commit = (_git("rev-parse", "HEAD") or "").strip()
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=normal") or ""
        changed = sorted(line[3:].strip() for line in status.splitlines() if line.strip())
        code_changes = [path for path in changed if path != PARAMS_FILE]
        describe = (_git("describe", "--always", "--dirty") or commit[:7]).strip()
        return {"commit": commit, "describe": describe, "code_dirty": bool(code_changes),
                "dirty_paths": code_changes, "params_modified": PARAMS_FILE in changed}
    try:
        version = importlib.metadata.version(PACKAGE)
        why = f"not a git checkout; installed package {PACKAGE} {version}"
    except importlib.metadata.PackageNotFoundError:
        version, why = None, f"not a git checkout, and {PACKAGE} is not installed (run from a copied tree)"
    return {"commit": None, "describe": f"{PACKAGE} {version}" if version else "unknown", "code_dirty": None,
            "dirty_paths": [], "params_modified": None, "unknown_because": why}


def code_version() -> str:
    """`git describe --always --dirty` of the checkout holding this package, else the package version, else
    'unknown'."""
    return code_state()["describe"]


def library_versions() -> dict:
    versions = {"python": platform.python_version(), "keras_backend": keras.backend.backend()}
    for name in ("numpy", "keras", "tensorflow", "jax", "jaxlib", "torch", "dvclive"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def accelerators() -> tuple[str, ...]:
    """Names of the GPUs the active backend sees (empty on CPU); probed once per process (the backend and its
    devices do not change while it runs)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tuple(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus)
    if backend == "jax":
        import jax

        return tuple(device.device_kind for device in jax.devices() if device.platform != "cpu")
    if backend == "torch":
        import torch

        return tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return ()


def cpu_model() -> str:
    """`model name` of /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def device_description() -> str:
    """'NVIDIA H200 (jax)' or 'AMD EPYC CPU, 2 cores (tensorflow)'."""
    try:
        gpus = accelerators()
    except Exception as error:  # noqa: BLE001  (a broken driver must not cost the run)
        gpus = [f"unknown accelerator ({type(error).__name__})"]
    cpu = f"{cpu_model()} CPU, {cpu_cores()} cores"
    return f"{', '.join(gpus)} ({keras.backend.backend()})" if gpus else f"{cpu} ({keras.backend.backend()})"


def snapshot() -> dict:
    """Everything above, taken once at the start of a run."""
    state = code_state()
    return {"code_version": state["describe"], "code": state, "libraries": library_versions(),
            "device": device_description(), "host_cpu": cpu_model(), "host_cpu_isa": cpu_isa(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA")}
