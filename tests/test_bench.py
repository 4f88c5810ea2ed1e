"""`ran bench`: the JSON it writes, its rates, and its work arithmetic."""

import json
import math

import pytest

from ran.bench import main, rate, work_rates

KEYS = {"network", "backend", "batch_size", "precision", "dtype_policy", "jit", "deterministic_ops", "augmentation",
        "steps", "repeats", "build_s", "compile_s", "predict_compile_s", "train_block_s", "infer_block_s",
        "train_images_per_s", "infer_images_per_s", "forward_macs", "train_tflops", "infer_tflops", "train_mfu",
        "infer_mfu", "train_cpu_ms_per_image", "host_peak_rss_mib", "device_peak_mib", "device", "cpu", "libraries",
        "load_average"}


def test_rate_is_images_over_the_median_block():
    assert rate(100, [4.0, 1.0, 2.0]) == 50.0


def test_work_rates_count_three_forward_passes_for_training():
    rates = work_rates(macs=10**9, train_ips=100.0, infer_ips=300.0, peak_tflops=2.0)
    assert rates["train_tflops"] == pytest.approx(0.6)  # 3 x 2 x 1e9 x 100
    assert rates["infer_tflops"] == pytest.approx(0.6)  # 2 x 1e9 x 300
    assert rates["train_mfu"] == pytest.approx(0.3)
    assert work_rates(10**9, 1.0, 1.0, None)["train_mfu"] is None


def test_cli_writes_the_documented_json(tmp_path, capsys):
    from ran.models import build_network, forward_macs

    out = tmp_path / "bench.json"
    argv = ["--network", "attention56", "--batch-size", "2", "--steps", "2", "--repeats", "2", "--peak-tflops", "1",
            "--deterministic", "false", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert KEYS <= set(result)
    assert (result["network"], result["attention"], result["learning"], result["mask"]) == (
        "attention56", "mixed", "ARL", "encoder_decoder")
    assert result["batch_size"] == 2 and result["deterministic_ops"] is False
    assert len(result["train_block_s"]) == len(result["infer_block_s"]) == 2
    for key in ("train_images_per_s", "infer_images_per_s", "train_tflops", "compile_s", "host_peak_rss_mib"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["forward_macs"] == forward_macs(build_network("attention56", 10))
    assert result["train_tflops"] == pytest.approx(6 * result["forward_macs"] * result["train_images_per_s"] / 1e12)
    assert result["train_mfu"] == pytest.approx(result["train_tflops"])  # against a 1 TFLOP/s peak
    assert "train images/s" in capsys.readouterr().out


def test_cli_rejects_a_zero_step_count():
    with pytest.raises(SystemExit):
        main(["--steps", "0"])


def test_auto_jit_is_on_for_jax_even_on_cpu(monkeypatch):
    """JAX without jit dispatches op by op (measured 2x slower); TensorFlow's CPU kernels beat XLA on CPU."""
    import keras

    from ran.train.loop import resolve_jit

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert resolve_jit("auto", gpu=False) is True
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    assert resolve_jit("auto", gpu=False) is False and resolve_jit("auto", gpu=True) is True
