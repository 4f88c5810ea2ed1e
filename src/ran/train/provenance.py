"""Where a result came from: code version, library versions and the device (train.json; STYLE "Experiments")."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import keras

PACKAGE = "residual-attention-replication"


def code_version() -> str:
    """`git describe --always --dirty` of the checkout holding this package, else the installed package version."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=10)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{PACKAGE} {importlib.metadata.version(PACKAGE)}"


def library_versions() -> dict:
    versions = {"python": platform.python_version(), "keras_backend": keras.backend.backend()}
    for name in ("numpy", "keras", "tensorflow", "jax", "jaxlib", "torch", "dvclive"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def accelerators() -> list[str]:
    """Names of the GPUs the active backend sees (empty on CPU)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    if backend == "jax":
        import jax

        return [device.device_kind for device in jax.devices() if device.platform != "cpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def device_description() -> str:
    gpus = accelerators()
    cpu = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    return f"{', '.join(gpus)} ({keras.backend.backend()})" if gpus else f"{cpu} ({keras.backend.backend()})"
