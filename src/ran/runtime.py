"""The process environment of a GPU-capable command (`ran train`, `evaluate`, `bench`), set before Keras loads.

Only defaults: a variable the user set is left alone.
- Memory: TensorFlow grabs every visible GPU's memory and JAX preallocates 75% of one, so two jobs on one machine
  collide; `TF_FORCE_GPU_ALLOW_GROWTH=true` and `XLA_PYTHON_CLIENT_PREALLOCATE=false` make both allocate as needed.
- Devices: with several GPUs each job takes one of its own (`ran.gpus`, `jobs_per_gpu` jobs per GPU).
- Determinism: on a CPU, TensorFlow runs one inter-op thread (`TF_NUM_INTEROP_THREADS=1`), which with its op
  determinism makes same-seed runs equal bit for bit; a float32 training job on a CPU with AVX-512 also caps oneDNN
  at AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`): its AVX-512 kernels give other bits from run to run (docs/performance.md).
- Logs: on a machine without an NVIDIA GPU, TensorFlow's failed CUDA initialisation is noise in every job's log
  ("failed call to cuInit"), so its C++ log level is raised to errors-off there (3); with a GPU it stays at 2
  (warnings off, errors on).
- Compilation caches: every job and every resume would recompile the same step (minutes for the deepest networks),
  so both backends keep compiled XLA programs in a per-user folder (`compile_caches`).

`load_framework`, called right after, loads Keras's backend: under JAX it keeps TensorFlow out of the process
(`keep_tensorflow_out`), then `check_device_visible` stops a job on a GPU machine whose framework sees no GPU (a
CPU-only jaxlib, a TensorFlow without its CUDA libraries): it would train at CPU speed, and say so only in a log
line that the log level above hides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def has_gpu() -> bool:
    """An NVIDIA GPU answers `nvidia-smi -L` (checked without importing a deep-learning framework)."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and "GPU" in result.stdout


def cache_root() -> Path:
    """This user's cache folder for the project: `$XDG_CACHE_HOME/ran`, else `~/.cache/ran`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ran"


def compile_caches() -> dict[str, str]:
    """Persistent XLA caches for both backends, as environment defaults; {} where the folder cannot be made.

    JAX: `JAX_COMPILATION_CACHE_DIR`, and a minimum compile time of 0 s (its default, 1 s, leaves out the small
    programs of a tiny network and of Keras's eager initialisers, each of which would compile again in every job).
    TensorFlow: `--tf_xla_persistent_cache_directory` appended to any `TF_XLA_FLAGS` (it applies to XLA-compiled
    steps only: `jit` on, i.e. a GPU). A user's own setting of either is left alone.
    """
    folders = {"jax": cache_root() / "xla-jax", "tf": cache_root() / "xla-tf"}
    try:
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # e.g. a read-only home: compiling every time is slower, not wrong
        return {}
    chosen = {}
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        chosen["JAX_COMPILATION_CACHE_DIR"] = str(folders["jax"])
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            chosen["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" not in flags:
        chosen["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folders['tf']}".strip()
    return chosen


def cpu_isa() -> str:
    """The widest x86 vector extension the CPU lists in /proc/cpuinfo: 'avx512', 'avx2', 'avx' or 'other'."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    for name, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx")):
        if flag in flags:
            return name
    return "other"


def gpu_backend_default() -> str | None:
    """'jax' where a CUDA build of JAX is installed and Keras has not loaded yet, else None (Keras's own default,
    TensorFlow). JAX is the GPU default (docs/performance.md, "The GPU backend"): its host work per step is a third
    of TensorFlow's, its compile cache saves more, and TensorFlow's wheel has no sm_90 code for H100/H200."""
    import importlib.metadata
    import sys

    if "keras" in sys.modules:  # too late to choose: the backend is fixed at Keras's import
        return None
    for plugin in ("jax-cuda12-plugin", "jax-cuda13-plugin"):
        try:
            importlib.metadata.version(plugin)
            return "jax"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def prepare_runtime(jobs_per_gpu: int = 1, training_precision: str | None = None) -> dict[str, str]:
    """Set the defaults above and take a GPU slot where there are GPUs; return the variables it set.

    `training_precision` is the `mixed_precision` of a job that trains (None for the others): only a float32 CPU
    training job gets the oneDNN cap, since AVX2 oneDNN has no bfloat16 convolution (a capped bfloat16 Conv2D
    fails with 'could not create a primitive descriptor')."""
    from ran.gpus import assign_gpu, device_count

    gpu = bool(device_count() or has_gpu())
    defaults = {"TF_CPP_MIN_LOG_LEVEL": "2" if gpu else "3", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
                "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if not gpu:  # same-seed runs equal bit for bit on a CPU (ran.train.loop.use_deterministic_ops)
        defaults["TF_NUM_INTEROP_THREADS"] = "1"
        if cpu_isa() == "avx512" and training_precision in ("float32", "auto"):  # AVX2 hosts need nothing
            defaults["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    if gpu and gpu_backend_default() is not None:
        defaults["KERAS_BACKEND"] = gpu_backend_default()
    chosen = {name: value for name, value in defaults.items() if name not in os.environ}
    chosen |= compile_caches()
    os.environ.update(chosen)
    if assign_gpu(jobs_per_gpu) is not None:
        chosen["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return chosen


# One documented install per backend that brings a CUDA build (pyproject.toml extras).
CUDA_INSTALL = {"tensorflow": "pip install -e '.[gpu]'", "jax": "pip install -e '.[jax-gpu]'"}
NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


class DeviceNotVisible(ValueError):
    """A GPU machine whose framework sees no GPU. A ValueError, so every command's `main` reports it as the one
    line it prints for a bad configuration, and exits 1."""


def proc_gpus() -> int:
    """Entries of /proc/driver/nvidia/gpus: the NVIDIA kernel driver's GPUs, there even without nvidia-smi."""
    try:
        return sum(1 for _ in NVIDIA_PROC.iterdir())
    except OSError:
        return 0


def gpu_signals() -> list[str]:
    """What says this machine has an NVIDIA GPU for this job (empty: none, or none wanted).

    `CUDA_VISIBLE_DEVICES` set to no device ("" or "-1") hides the GPUs on purpose, and `RAN_FAKE_GPUS` (tests)
    stands in for GPUs that do not exist: neither expects the framework to see one.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if os.environ.get("RAN_FAKE_GPUS") is not None or (visible is not None and visible.strip() in {"", "-1"}):
        return []
    signals = ["nvidia-smi -L lists a GPU"] if has_gpu() else []
    if count := proc_gpus():
        signals.append(f"{NVIDIA_PROC} has {count} entries")
    if visible is not None:
        signals.append(f"CUDA_VISIBLE_DEVICES={visible}")
    return signals


def framework_gpus(backend: str) -> list[str]:
    """The GPUs the loaded framework sees (TensorFlow: physical GPU devices; JAX: devices not on the CPU)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices() if device.platform != "cpu"]
    return []


def check_device_visible() -> None:
    """Stop (DeviceNotVisible) where the machine has a GPU and the Keras backend sees none; call it after
    `prepare_runtime`, when the job is about to load its framework anyway (this loads it)."""
    signals = gpu_signals()
    if not signals:
        return
    import keras

    backend = keras.backend.backend()
    if backend not in CUDA_INSTALL or framework_gpus(backend):
        return
    raise DeviceNotVisible(
        f"this machine has a GPU ({'; '.join(signals)}) but the {backend} backend sees none, so the job would run "
        f"on the CPU: install its CUDA build with `{CUDA_INSTALL[backend]}` (or set CUDA_VISIBLE_DEVICES= to run "
        f"on the CPU on purpose)")


def keep_tensorflow_out() -> bool:
    """Under another backend, make Keras take TensorFlow as not installed; True where it did.

    Keras imports TensorFlow whenever it is installed: `keras.utils.set_random_seed` to seed it too, and every
    `model.save` to test objects against TensorFlow's types (`tf.available` of its lazy module). In a JAX job that is
    a second CUDA stack in the process beside jax's (jax#9454 is that kind of failure) and seconds of import. Both
    uses skip TensorFlow where it is absent, a configuration Keras supports and tests/test_jax_without_tensorflow.py
    runs; the lazy module has no public switch, so its private flag is set. Does nothing where TensorFlow is the
    backend or already imported, or where a later Keras drops that module (then TensorFlow loads as before).
    """
    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return False
    try:
        from keras.src.utils import module_utils
    except ImportError:
        return False
    lazy = getattr(module_utils, "tensorflow", None)
    if lazy is None or not hasattr(lazy, "_available"):
        return False
    lazy._available = False
    return True


def load_framework() -> str:
    """Load the Keras backend for a `ran` job, right after `prepare_runtime`: TensorFlow kept out of a JAX job,
    then the device check (DeviceNotVisible). Returns the backend's name."""
    import keras

    keep_tensorflow_out()
    check_device_visible()
    return keras.backend.backend()
