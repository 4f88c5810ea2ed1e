"""GPU slots on a machine with several GPUs, with fake devices: distinct GPUs, packing, a killed job's slot reused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

HOLDER = """
import os, sys, time
from ran.gpus import assign_gpu
assign_gpu(int(sys.argv[1]), poll_s=0.05)
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def machine(tmp_path, root):
    """Environment of a job on a machine with 2 fake GPUs and its own slot folder."""
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(RAN_FAKE_GPUS="2", RAN_GPU_SLOTS=str(tmp_path / "slots"), PYTHONPATH=str(root / "src"))
    return env


def start(env, jobs_per_gpu=1, hold_s=30.0):
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(jobs_per_gpu), str(hold_s)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def device_of(job) -> str:
    return job.stdout.readline().strip()


def stop(*jobs):
    for job in jobs:
        job.kill()
        job.wait()


def test_concurrent_jobs_get_distinct_gpus_and_a_third_waits(machine):
    first, second = start(machine), start(machine)
    try:
        assert {device_of(first), device_of(second)} == {"0", "1"}
        third = start(machine, hold_s=0.1)
        time.sleep(1.0)
        assert third.poll() is None, "every GPU is taken: the third job must wait"
        first.send_signal(signal.SIGKILL)  # a crashed job: the kernel releases its slot
        first.wait()
        assert device_of(third) in {"0", "1"}
        assert "waiting for one" in third.communicate(timeout=30)[1]
    finally:
        stop(first, second)


def test_packing_puts_k_jobs_on_each_gpu_filling_every_gpu_first(machine):
    jobs = [start(machine, jobs_per_gpu=2) for _ in range(4)]
    try:
        devices = sorted(device_of(job) for job in jobs)
        assert devices == ["0", "0", "1", "1"]
    finally:
        stop(*jobs)


def test_no_slot_leaks_after_jobs_end_and_assigned_devices_are_respected(machine, tmp_path):
    for _ in range(3):  # finished jobs leave every slot free
        job = start(machine, hold_s=0)
        assert device_of(job) == "0"
        job.wait(timeout=30)
    env = {**machine, "CUDA_VISIBLE_DEVICES": "7"}  # e.g. SLURM assigned the device: nothing to do
    result = subprocess.run([sys.executable, "-c", HOLDER, "1", "0"], env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "7" and "GPU" not in result.stderr
    no_gpu = {**machine, "RAN_FAKE_GPUS": "0"}
    result = subprocess.run([sys.executable, "-c", "from ran.gpus import assign_gpu; print(assign_gpu())"],
                            env=no_gpu, capture_output=True, text=True)
    assert result.stdout.strip() == "None"
