"""The training loop: resume after a crash equals an uninterrupted run, determinism, NaN guard, history, outputs."""

import csv
import json
import re
import types
from pathlib import Path

import keras
import numpy as np
import pytest

from ran.train.checkpoint import CheckpointError
from ran.train.loop import (
    Interrupted,
    ProgressLines,
    TrainingDiverged,
    resolve_jit,
    resolve_precision,
    train_seed,
)

TRAINING = {"batch_size": 8, "base_lr": 0.01, "lr_decay_at": [0.4, 0.6], "lr_decay_factor": 0.1, "momentum": 0.9,
            "nesterov": True, "weight_decay": 1e-4, "pad": 4, "flip": True, "mixed_precision": "auto",
            "jit": "auto", "iterations": 12, "checkpoint_every": 4, "log_every": 2, "name": "test"}


def tiny_network(num_classes: int = 10):
    """A few hundred weights: conv with L2 decay -> pooling -> dense logits (stands in for the paper's nets)."""
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(4, 3, strides=4, use_bias=False, kernel_regularizer=keras.regularizers.L2(1e-4))(
        inputs)
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.BatchNormalization()(features))
    return keras.Model(inputs, keras.layers.Dense(num_classes)(features), name="tiny")


def tiny_data(n: int = 40, num_classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, num_classes, n).astype(np.int64)


def train(tmp: Path, name: str, seed: int = 0, training=None, **kwargs):
    images, labels = tiny_data()
    return train_seed(tiny_network, images, labels, training or TRAINING, seed, tmp / name / "out",
                      tmp / name / "ckpt", record={"run": "tiny"}, progress=False, **kwargs)


def weights(out: Path) -> list[np.ndarray]:
    return [np.asarray(w) for w in keras.saving.load_model(out / "model.keras", compile=False).get_weights()]


def history(out: Path) -> list[list[str]]:
    with open(out / "live" / "plots" / "metrics" / "train" / "loss.tsv") as file:
        return list(csv.reader(file, delimiter="\t"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    return tmp / "a" / "out", train(tmp, "a")


def test_outputs_and_provenance(uninterrupted):
    out, record = uninterrupted
    assert sorted(p.name for p in out.iterdir()) == ["live", "model.keras", "train.json"]
    assert json.loads((out / "train.json").read_text()) == json.loads(json.dumps(record))
    for key in ("code_version", "libraries", "device", "train_wall_s", "images_per_s", "final_train_loss", "seed"):
        assert record[key] is not None, key
    assert record["training"]["iterations"] == 12 and record["run"] == "tiny" and record["resumes"] == 0
    assert np.isfinite(record["final_train_loss"])
    assert not (out.parent / "ckpt").exists(), "checkpoints must be removed once the model is written"
    rows = history(out)
    assert [int(r[0]) for r in rows[1:]] == [2, 4, 6, 8, 10, 12]
    assert float(rows[-1][1]) == pytest.approx(record["final_train_loss"])


def test_saved_model_takes_uint8_and_is_deterministic_at_inference(uninterrupted):
    out, _ = uninterrupted
    model = keras.saving.load_model(out / "model.keras", compile=False)
    images, _ = tiny_data(5)
    first, second = model.predict(images, verbose=0), model.predict(images, verbose=0)
    assert first.shape == (5, 10) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)


def test_resume_after_crash_equals_uninterrupted_run(uninterrupted, tmp_path):
    out, record = uninterrupted
    # Crash after iteration 6: the checkpoint at 4 survives, iterations 5-6 and their logged row are lost.
    with pytest.raises(Interrupted):
        train(tmp_path, "b", interrupt_after=6)
    assert (tmp_path / "b" / "ckpt" / "state.npz").is_file()
    assert not (tmp_path / "b" / "out").exists(), "no outputs before the run finishes"
    resumed = train(tmp_path, "b")
    assert resumed["resumes"] == 1
    for expected, actual in zip(weights(out), weights(tmp_path / "b" / "out"), strict=True):
        np.testing.assert_array_equal(actual, expected)
    assert resumed["final_train_loss"] == record["final_train_loss"]
    assert history(tmp_path / "b" / "out") == history(out)


def test_same_seed_same_run_other_seed_other_run(uninterrupted, tmp_path):
    out, record = uninterrupted
    again = train(tmp_path, "same")
    assert again["final_train_loss"] == record["final_train_loss"]
    for expected, actual in zip(weights(out), weights(tmp_path / "same" / "out"), strict=True):
        np.testing.assert_array_equal(actual, expected)
    other = train(tmp_path, "other", seed=1)
    assert other["final_train_loss"] != record["final_train_loss"]


def test_a_torn_checkpoint_falls_back_to_the_previous_one(uninterrupted, tmp_path, capsys):
    """A truncated newest checkpoint: the run resumes from the one before, warns naming both, ends equal."""
    out, record = uninterrupted
    with pytest.raises(Interrupted):
        train(tmp_path, "torn", interrupt_after=8)  # checkpoints at 4 (previous) and 8 (current)
    ckpt = tmp_path / "torn" / "ckpt"
    assert sorted(p.name for p in ckpt.glob("*.npz")) == ["state.npz", "state.previous.npz"]
    data = (ckpt / "state.npz").read_bytes()
    (ckpt / "state.npz").write_bytes(data[: len(data) // 2])
    resumed = train(tmp_path, "torn")
    warning = capsys.readouterr().err
    assert f"unreadable checkpoint {ckpt / 'state.npz'}" in warning and "iteration 4" in warning
    assert resumed["final_train_loss"] == record["final_train_loss"]
    for expected, actual in zip(weights(out), weights(tmp_path / "torn" / "out"), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_no_readable_checkpoint_names_every_file_and_the_way_out(tmp_path):
    with pytest.raises(Interrupted):
        train(tmp_path, "broken", interrupt_after=4)
    ckpt = tmp_path / "broken" / "ckpt"
    (ckpt / "state.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(CheckpointError, match=rf"no checkpoint in {re.escape(str(ckpt))} can be read: .*state\.npz "
                                              rf"\(BadZipFile.*Delete {re.escape(str(ckpt))} to start this seed"):
        train(tmp_path, "broken")


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    with pytest.raises(Interrupted):
        train(tmp_path, "c", interrupt_after=4)
    with pytest.raises(ValueError, match="another configuration"):
        train(tmp_path, "c", training={**TRAINING, "base_lr": 0.02})


def test_nan_loss_stops_with_the_iteration_and_leaves_no_outputs(tmp_path):
    # A constant, absurd learning rate: the first update blows the weights up.
    explosive = {**TRAINING, "base_lr": 1e30, "lr_decay_at": [1.0], "iterations": 8}
    with pytest.raises(TrainingDiverged, match=r"NaN or Inf at iteration (\d+)") as caught:
        train(tmp_path, "nan", training=explosive)
    step = int(caught.value.args[0].split("iteration ")[1].split(" ")[0])
    assert 0 < step < 8
    assert not (tmp_path / "nan" / "out").exists()
    # the named iteration is the first bad one: stopping just before it trains cleanly
    finished = train(tmp_path, "clean", training={**explosive, "iterations": step, "checkpoint_every": step})
    assert np.isfinite(finished["final_train_loss"])


def test_precision_and_jit_resolution():
    assert resolve_precision("auto", gpu=False) == "float32"
    assert resolve_precision("auto", gpu=True) == "mixed_bfloat16"
    assert resolve_precision("float16", gpu=True) == "mixed_float16"
    # On CPU, auto means XLA for JAX only (docs/performance.md); tests/test_bench.py covers both backends.
    assert resolve_jit("auto", gpu=False) is (keras.backend.backend() == "jax")
    assert resolve_jit("auto", gpu=True) is True
    assert resolve_jit(True, gpu=False) is True
    with pytest.raises(ValueError, match="mixed_precision"):
        resolve_precision("fp8", gpu=True)
    with pytest.raises(ValueError, match="jit"):
        resolve_jit("yes", gpu=True)


def test_provenance_never_costs_a_result(tmp_path, monkeypatch):
    """A copied tree on a GPU node: no git checkout, the package not installed. The run still finishes."""
    import importlib.metadata

    from ran.train import provenance

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(provenance, "_git", lambda *args: None)
    monkeypatch.setattr(provenance.importlib.metadata, "version", not_installed)
    record = train(tmp_path, "copied", training={**TRAINING, "iterations": 2, "checkpoint_every": 2})
    saved = json.loads((tmp_path / "copied" / "out" / "train.json").read_text())
    assert saved["code"]["commit"] is None and "not installed" in saved["code"]["unknown_because"]
    assert saved["code_version"] == record["code_version"] == "unknown"
    assert saved["device"] and saved["libraries"]["python"]


def test_one_console_line_per_checkpoint_segment(tmp_path, capsys):
    train(tmp_path, "lines")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("train: ") and "loss" in line]
    assert [line.split("iteration ")[1].split(",")[0] for line in lines] == ["4/12", "8/12", "12/12"]
    assert all(re.search(r"loss \d+\.\d{4}, \d+\.\d images/s, \d+ min left$", line) for line in lines)
    assert lines[0].startswith("train: tiny seed 0: iteration 4/12")


def test_time_left_counts_validation_and_checkpoints_not_only_training():
    """10 iterations of batch 10 in 100 s of training and 150 s of wall clock: 1.0 images/s, and the 20 iterations
    left take 300 s at the wall-clock pace (200 s at the training speed alone)."""
    lines = ProgressLines("tiny seed 0", 30, 10, 0, {"train_s": 0.0, "total_s": 0.0})
    bar = types.SimpleNamespace(disable=True)
    assert lines.segment(10, 2.5, {"train_s": 100.0, "total_s": 150.0}, bar).endswith("1.0 images/s, 5 min left")
    assert lines.segment(20, 2.0, {"train_s": 110.0, "total_s": 750.0}, bar).endswith("10.0 images/s, 10 min left")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's inter-op threads")
def test_determinism_is_recognised_when_the_runtime_started_first(capsys):
    """The runtime started (as when another test ran an op first): TensorFlow's config then reads 0 and cannot be
    set, while TF_NUM_INTEROP_THREADS=1 (set by conftest, as ran.runtime does on a CPU) is what it runs with."""
    import os

    import tensorflow as tf

    from ran.train.loop import use_deterministic_ops

    tf.constant(1.0) + 1.0
    assert os.environ["TF_NUM_INTEROP_THREADS"] == "1"
    assert use_deterministic_ops(gpu=False) is True
    assert "warning" not in capsys.readouterr().err
