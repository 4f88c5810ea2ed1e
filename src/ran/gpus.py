"""One GPU per job on a machine with several: a slot allocator for `ran train`, `evaluate` and `bench`.

With N GPUs, `snakemake --cores all --resources gpu=N` runs N train/evaluate jobs at once; without help they would
all land on GPU 0. Each job takes a slot before its framework loads and sees only that slot's GPU
(`CUDA_VISIBLE_DEVICES`). A slot is a lock file, `{slots}/gpu{d}-{k}.lock` for device d and k < jobs_per_gpu, held
with `flock` for the life of the process: the kernel releases it when the process ends, however it ends, so a killed
job's slot is free again at once and no slot can go stale (the file's text, the holder's pid, is only a note).
When every slot is taken the job waits for one.

Nothing is assigned where devices are assigned already: `CUDA_VISIBLE_DEVICES` set by the user or by SLURM (which
sets it for each job), or a machine without GPUs. `RAN_FAKE_GPUS=N` stands in for N GPUs in tests.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HELD = []  # open lock files of this process: closing them (at exit) releases the slots


def device_count() -> int:
    """NVIDIA GPUs on this machine (`nvidia-smi -L`), or `RAN_FAKE_GPUS`."""
    fake = os.environ.get("RAN_FAKE_GPUS")
    if fake is not None:
        return int(fake)
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines()) if listed.returncode == 0 else 0


def slots_dir() -> Path:
    """Shared by every job of this user on this machine (`RAN_GPU_SLOTS` to choose another folder)."""
    folder = Path(os.environ.get("RAN_GPU_SLOTS") or Path(tempfile.gettempdir()) / f"ran-gpu-slots-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def try_slot(devices: int, jobs_per_gpu: int, folder: Path) -> int | None:
    """Take the first free slot, filling every device once before packing a second job onto one."""
    for k in range(jobs_per_gpu):
        for device in range(devices):
            handle = open(folder / f"gpu{device}-{k}.lock", "a+")  # noqa: SIM115 (held until the process ends)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _HELD.append(handle)
            return device
    return None


def assign_gpu(jobs_per_gpu: int = 1, poll_s: float = 1.0) -> int | None:
    """Give this process one GPU of its own (sets CUDA_VISIBLE_DEVICES); return it, or None where not needed."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    devices = device_count()
    if devices < 1:
        return None
    folder, waited = slots_dir(), False
    while (device := try_slot(devices, max(1, int(jobs_per_gpu)), folder)) is None:
        if not waited:
            print(f"gpus: all {devices * jobs_per_gpu} GPU slots ({devices} GPUs x {jobs_per_gpu}) are taken; "
                  f"waiting for one ({folder})", file=sys.stderr)
            waited = True
        time.sleep(poll_s)
    os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
    print(f"gpus: this job runs on GPU {device} (CUDA_VISIBLE_DEVICES={device})", file=sys.stderr)
    return device
