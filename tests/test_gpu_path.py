"""The GPU code path, proven on a CPU (issue 18): the device check with faked GPU signals, the persistent
compilation caches, evaluation through one compiled function, TensorFlow kept out of a JAX job, `ran gpucheck`."""

from __future__ import annotations

import tomllib

import pytest

from ran import runtime

GPU_MACHINE = ["nvidia-smi -L lists a GPU"]


# ---- (1) the device check ------------------------------------------------------------------------------------


@pytest.fixture
def no_gpu_env(monkeypatch):
    for name in ("CUDA_VISIBLE_DEVICES", "RAN_FAKE_GPUS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    monkeypatch.setattr(runtime, "proc_gpus", lambda: 0)


def test_each_gpu_signal_counts_and_hidden_or_fake_gpus_do_not(no_gpu_env, monkeypatch):
    assert runtime.gpu_signals() == []
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    assert runtime.gpu_signals() == GPU_MACHINE
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    monkeypatch.setattr(runtime, "proc_gpus", lambda: 2)
    assert runtime.gpu_signals() == ["/proc/driver/nvidia/gpus has 2 entries"]
    monkeypatch.setattr(runtime, "proc_gpus", lambda: 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # e.g. SLURM gave this job GPU 3
    assert runtime.gpu_signals() == ["CUDA_VISIBLE_DEVICES=3"]
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    for hidden in ("", "-1"):  # the user hid the GPUs: a CPU run on purpose
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert runtime.gpu_signals() == [], hidden
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("RAN_FAKE_GPUS", "2")  # the e2e workflow's fake GPUs: no device is expected
    assert runtime.gpu_signals() == []


def test_a_gpu_machine_whose_tensorflow_sees_no_gpu_stops_naming_the_install(no_gpu_env, monkeypatch):
    """The real TensorFlow device list of this CPU machine (no GPU), with the machine's GPU signal faked."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("runs under the TensorFlow backend (the suite's default)")
    runtime.check_device_visible()  # a CPU machine: nothing to check
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    with pytest.raises(runtime.DeviceNotVisible) as error:
        runtime.check_device_visible()
    message = str(error.value)
    assert "\n" not in message and "tensorflow backend sees none" in message and "pip install -e '.[gpu]'" in message
    assert "nvidia-smi -L" in message
    monkeypatch.setattr(runtime, "framework_gpus", lambda backend: ["/physical_device:GPU:0"])
    runtime.check_device_visible()  # the framework sees it: the job goes on


def test_a_gpu_machine_with_a_cpu_only_jaxlib_stops_naming_the_jax_install(no_gpu_env, monkeypatch):
    import keras

    assert runtime.framework_gpus("jax") == []  # the real device list of jax[cpu]
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(runtime, "proc_gpus", lambda: 1)
    with pytest.raises(runtime.DeviceNotVisible, match=r"jax backend sees none.*pip install -e '\.\[jax-gpu\]'"):
        runtime.check_device_visible()
    monkeypatch.setattr(runtime, "framework_gpus", lambda backend: ["cuda:0"])
    runtime.check_device_visible()


def test_the_named_installs_are_extras_that_bring_a_cuda_build(root):
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {backend: command.split("[", 1)[1].split("]", 1)[0] for backend, command in runtime.CUDA_INSTALL.items()}
    assert any(req.startswith("tensorflow[and-cuda]") for req in extras[named["tensorflow"]])
    assert any(req.startswith("jax[cuda") for req in extras[named["jax"]])


def test_bench_and_evaluate_stop_in_one_line_before_any_work(no_gpu_env, monkeypatch, capsys, root, tmp_path):
    from ran import bench, evaluate

    monkeypatch.setattr(runtime, "prepare_runtime", lambda jobs_per_gpu=1: {})  # keep this process's environment
    monkeypatch.setattr(runtime, "gpu_signals", lambda: GPU_MACHINE)
    monkeypatch.setattr(runtime, "framework_gpus", lambda backend: [])
    monkeypatch.setattr(bench, "benchmark", lambda args: pytest.fail("bench measured on the wrong device"))
    for main, argv in ((bench.main, ["--steps", "1"]),
                       (evaluate.main, ["--params", str(root / "params.yaml"), "--run", "c10_a56_arl_mixed",
                                        "--models", str(tmp_path / "models"), "--prepared", str(tmp_path),
                                        "--out", str(tmp_path / "eval")])):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        error = capsys.readouterr().err.strip()
        assert exit_info.value.code == 1 and len(error.splitlines()) == 1 and "sees none" in error, error
    assert not (tmp_path / "eval").exists()
