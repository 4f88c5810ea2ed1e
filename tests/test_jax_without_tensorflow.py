"""A GPU node with a CUDA JAX and no TensorFlow: `KERAS_BACKEND=jax ran download|prepare|train|evaluate|bench` work
where `import tensorflow` fails (the install documented as `pip install -e '.[jax]'`)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

BLOCKER = "raise ImportError('tensorflow is blocked: this test runs as on a node without TensorFlow')\n"


@pytest.mark.slow
def test_the_training_commands_run_on_jax_without_tensorflow(root, tmp_path):
    blocked = tmp_path / "blocked" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(BLOCKER)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{blocked.parent}{os.pathsep}{root / 'src'}"}
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "tensorflow is blocked" in probe.stderr

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profiles"]["smoke"]["runs"] = ["c10_a56_arl_mixed"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def ran(*args):
        result = subprocess.run([sys.executable, "-m", "ran.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, f"ran {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    common = ["--params", "params.yaml", "--profile", "smoke"]
    ran("download", *common, "--dataset", "cifar10", "--out", "archives/cifar10-binary.tar.gz")
    ran("prepare", *common, "--dataset", "cifar10", "--archive", "archives/cifar10-binary.tar.gz", "--out", "prep")
    ran("train", *common, "--run", "c10_a56_arl_mixed", "--prepared", "prep", "--out", "models",
        "--checkpoints", "ckpt", "--seeds", "0", "--no-progress")
    ran("evaluate", "--params", "params.yaml", "--run", "c10_a56_arl_mixed", "--models", "models", "--prepared",
        "prep", "--out", "eval", "--seeds", "0")
    ran("bench", "--network", "attention56", "--batch-size", "2", "--steps", "1", "--repeats", "1", "--out",
        "bench.json")
    record = json.loads((tmp_path / "models" / "seed0" / "train.json").read_text())
    assert record["libraries"]["keras_backend"] == "jax"
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["seeds"][0]["num_test"] == 40
    assert json.loads((tmp_path / "bench.json").read_text())["backend"] == "jax"
