"""Fault cases of issue 17: a changed key between a kill and a resume, a kill during `ran prepare`, crafted
`.keras` files, and two `ran train` of one run at once."""

import numpy as np
import pytest

from ran.train.checkpoint import identity_changes
from ran.train.loop import Interrupted
from test_train_loop import TRAINING, train, weights


def test_identity_changes_are_dotted_keys_old_to_new():
    old = {"training": {"base_lr": 0.1, "pad": 4}, "seed": 0, "record": {"run": "a"}}
    new = {"training": {"base_lr": 0.2, "pad": 4}, "seed": 0, "record": {"run": "a", "noise": 0.1}}
    assert identity_changes(old, new) == ["record.noise: (absent) -> 0.1", "training.base_lr: 0.1 -> 0.2"]
    assert identity_changes(old, old) == []


def test_a_changed_training_key_names_it_and_both_ways_out(tmp_path):
    with pytest.raises(Interrupted):
        train(tmp_path, "lr", interrupt_after=4)  # the checkpoint at iteration 4
    ckpt = tmp_path / "lr" / "ckpt"
    with pytest.raises(ValueError) as refused:
        train(tmp_path, "lr", training={**TRAINING, "base_lr": 0.02})
    message = str(refused.value)
    assert "(training.base_lr: 0.01 -> 0.02)" in message, message
    assert "restore that value to resume" in message and f"delete {ckpt} to start" in message
    assert message.endswith("losing its 4 iterations") and "\n" not in message and len(message) < 400
    assert (ckpt / "state.npz").is_file(), "a refused resume keeps the checkpoint"


def test_log_and_checkpoint_cadence_do_not_block_a_resume(tmp_path):
    cadence = {**TRAINING, "log_every": 4, "checkpoint_every": 6}
    with pytest.raises(Interrupted):
        train(tmp_path, "cadence", interrupt_after=6)  # the checkpoint at 4 survives (checkpoint_every 4)
    resumed = train(tmp_path, "cadence", training=cadence)
    assert resumed["resumes"] == 1 and resumed["training"]["log_every"] == 4
    train(tmp_path, "straight", training=cadence)
    for expected, actual in zip(weights(tmp_path / "straight" / "out"), weights(tmp_path / "cadence" / "out"),
                                strict=True):
        np.testing.assert_array_equal(actual, expected)
