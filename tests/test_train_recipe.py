"""The fast recipe (docs/recipe.md): triangular rate, label smoothing, EMA with BatchNorm recalibration, flip TTA,
a held-out validation split, exact resume with EMA on; and the paper's profiles untouched by it."""

import json

import keras
import numpy as np
import pytest
from keras import ops

from ran.config import resolve_profile
from ran.evaluate import flip_tta_logits
from ran.train.data import validation_split
from ran.train.loop import SmoothedSparseCrossentropy, recalibrate_batch_norm
from ran.train.schedule import Triangular
from ran.train.settings import TrainingConfig
from test_train_loop import TRAINING, train, weights

RECIPE = {**TRAINING, "schedule": "triangular", "warmup": 0.25, "label_smoothing": 0.1, "ema": 0.9,
          "ema_bn_batches": 3, "validation": 10}

# The paper's protocol and the two profiles built on it, as they resolved before the recipe existed.
PAPER_TRAINING = {"batch_size": 64, "base_lr": 0.1, "lr_decay_at": [0.4, 0.6], "lr_decay_factor": 0.1,
                  "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4, "pad": 4, "flip": True,
                  "mixed_precision": "float32", "jit": "auto", "run_eagerly": False, "data": "official"}
BEFORE_THE_RECIPE = {
    "paper": {**PAPER_TRAINING, "iterations": 160000, "checkpoint_every": 2000, "log_every": 200, "name": "paper"},
    "quick": {**PAPER_TRAINING, "iterations": 16000, "checkpoint_every": 1000, "log_every": 100, "name": "quick"},
    "cpu": {**PAPER_TRAINING, "iterations": 1400, "checkpoint_every": 200, "log_every": 50, "name": "cpu"},
}


@pytest.mark.parametrize("profile", sorted(BEFORE_THE_RECIPE))
def test_paper_profiles_resolve_to_the_settings_before_the_recipe(params, profile):
    resolved = resolve_profile(params, profile)
    assert resolved == BEFORE_THE_RECIPE[profile]
    assert TrainingConfig.from_dict(resolved).is_paper_protocol


def test_fast_profiles_are_not_the_paper_protocol(params):
    # every profile named for the recipe, trials included, so a new trial cannot slip back to the paper's protocol
    fast = [name for name in params["profiles"] if "fast" in name]
    assert {"fast", "cpu_fast", "cpu_fast_budget"} <= set(fast)
    for profile in fast:
        config = TrainingConfig.from_dict(resolve_profile(params, profile))
        assert not config.is_paper_protocol and config.schedule == "triangular" and config.validation > 0, profile


def test_triangular_rate_at_its_boundaries():
    schedule = Triangular(peak=0.2, warmup_steps=10, total=50, start_fraction=0.1)
    expected = {0: 0.02, 5: 0.11, 10: 0.2, 30: 0.1, 49: 0.2 / 40, 50: 0.0}
    for step, rate in expected.items():
        assert schedule.value_at(step) == pytest.approx(rate, abs=1e-12), step
        assert float(ops.convert_to_numpy(schedule(step))) == pytest.approx(rate, abs=1e-7), step
    clone = Triangular.from_config(schedule.get_config())
    assert [clone.value_at(s) for s in expected] == [schedule.value_at(s) for s in expected]


def test_triangular_without_warmup_starts_at_the_peak():
    assert Triangular(0.1, 0, 10, 0.1).value_at(0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="warm-up"):
        Triangular(0.1, 10, 10, 0.1)


def test_label_smoothing_targets():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], np.float32)
    labels = np.array([0, 2])
    loss = SmoothedSparseCrossentropy(0.3, 3)
    target = np.full((2, 3), 0.1) + 0.7 * np.eye(3)[labels]
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -(target * log_softmax).sum(axis=1).mean()
    assert float(ops.convert_to_numpy(loss(labels, logits))) == pytest.approx(expected, rel=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(ops.convert_to_numpy(SmoothedSparseCrossentropy(0.0, 3)(labels, logits))) == pytest.approx(
        float(ops.convert_to_numpy(plain)), rel=1e-6)


def test_batch_norm_recalibration_is_the_average_of_batch_statistics():
    inputs = keras.Input((4,))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, norm(inputs))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=i, size=(8, 4)).astype(np.float32) for i in range(3)]
    assert recalibrate_batch_norm(model, batches) == 1
    np.testing.assert_allclose(ops.convert_to_numpy(norm.moving_mean), np.mean([b.mean(0) for b in batches], 0),
                               rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(norm.moving_variance), np.mean([b.var(0) for b in batches], 0),
                               rtol=1e-4)
    assert norm.momentum == 0.99


def test_flip_tta_is_the_mean_probability_of_both_views():
    inputs = keras.Input((2, 2, 1))
    model = keras.Model(inputs, keras.layers.Flatten()(inputs))  # logits = the 4 pixels, so a mirror changes them
    images = np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1)
    single = np.asarray(model(images))
    mirrored = np.asarray(model(images[:, :, ::-1, :]))
    softmax = [np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) for z in (single, mirrored)]
    np.testing.assert_allclose(np.exp(flip_tta_logits(model, images, 1, single)), (softmax[0] + softmax[1]) / 2,
                               rtol=1e-5)


def test_validation_split_is_disjoint_balanced_and_fixed():
    labels = np.repeat(np.arange(10), 30)
    kept, held = validation_split(labels, 25)
    assert len(held) == 25 and len(kept) == 275 and not set(kept) & set(held)
    assert sorted(np.bincount(labels[held], minlength=10)) == [2] * 5 + [3] * 5
    again = validation_split(labels, 25)
    np.testing.assert_array_equal(again[1], held)
    assert len(validation_split(labels, 0)[1]) == 0
    with pytest.raises(ValueError, match="validation"):
        validation_split(labels, 300)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    from test_train_loop import tiny_data

    tmp = tmp_path_factory.mktemp("recipe")
    validation = tiny_data(RECIPE["validation"], seed=1)  # the split itself is tested above
    record = train(tmp, "a", training=RECIPE, validation=validation)
    return tmp, validation, record


def test_recipe_run_reports_averaging_and_validation(recipe_run):
    tmp, validation, record = recipe_run
    assert record["weights"] == {"averaged": True, "ema_momentum": 0.9, "bn_recalibrated_layers": 1,
                                 "bn_recalibration_images": 3 * RECIPE["batch_size"]}
    assert record["validation"]["images"] == 10 and 0 <= record["validation"]["error_pct"] <= 100
    saved = json.loads((tmp / "a" / "out" / "train.json").read_text())
    assert saved["weights"]["averaged"] is True
    assert (tmp / "a" / "out" / "live" / "plots" / "metrics" / "val" / "error.tsv").is_file()


def test_resume_with_ema_equals_an_uninterrupted_run(recipe_run):
    from ran.train.loop import Interrupted

    tmp, validation, _ = recipe_run
    with pytest.raises(Interrupted):
        train(tmp, "b", training=RECIPE, validation=validation, interrupt_after=6)
    resumed = train(tmp, "b", training=RECIPE, validation=validation)
    assert resumed["resumes"] == 1
    for a, b in zip(weights(tmp / "a" / "out"), weights(tmp / "b" / "out"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_several_steps_per_execution_give_the_same_weights(tmp_path, monkeypatch):
    """TensorFlow runs a segment's steps in one call (steps_per_execution); the weights equal one step a call,
    including a segment shorter than the execution (the pass boundary of 40 images at batch 8 ends one at 5)."""
    import ran.train.loop as loop

    assert loop.steps_per_execution(TrainingConfig.from_dict(TRAINING)) == (
        2 if keras.backend.backend() == "tensorflow" else 1)
    several = train(tmp_path, "several", training={**TRAINING, "log_every": 4})
    monkeypatch.setattr(loop, "steps_per_execution", lambda config: 1)
    single = train(tmp_path, "single", training={**TRAINING, "log_every": 4})
    assert several["final_train_loss"] == single["final_train_loss"]
    for a, b in zip(weights(tmp_path / "several" / "out"), weights(tmp_path / "single" / "out"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_validation_error_recomputes_batch_norm_and_restores_the_running_statistics():
    from ran.train.loop import validation_error

    inputs = keras.Input((4,))
    norm = keras.layers.BatchNormalization()
    model = keras.Model(inputs, keras.layers.Dense(3)(norm(inputs)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=5.0, size=(8, 4)).astype(np.float32) for _ in range(2)]
    validation = (rng.normal(loc=5.0, size=(30, 4)).astype(np.float32), rng.integers(0, 3, 30))
    before = [np.array(ops.convert_to_numpy(v)) for v in (norm.moving_mean, norm.moving_variance)]
    error = validation_error(model, model, validation, batches)
    after = [np.array(ops.convert_to_numpy(v)) for v in (norm.moving_mean, norm.moving_variance)]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    recalibrate_batch_norm(model, batches)
    logits = np.asarray(model.predict(validation[0], verbose=0))
    assert error == pytest.approx(100.0 * np.mean(logits.argmax(axis=1) != validation[1]))
