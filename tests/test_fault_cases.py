"""Fault cases of issue 17: a changed key between a kill and a resume, a kill during `ran prepare`, crafted
`.keras` files, and two `ran train` of one run at once."""

import hashlib
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import ran.data.prepare
from ran.data import DataError
from ran.data.prepare import load_manifest, load_split, prepare
from ran.data.synthetic import write_synthetic_archive
from ran.evaluate import load_trained_model
from ran.locks import LockHeld, hold_lock
from ran.train.checkpoint import identity_changes
from ran.train.loop import Interrupted
from ran.train.run import main as train_main
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


@pytest.fixture
def two_archives(tmp_path):
    """Two synthetic CIFAR-10 archives of the same size and different pixels."""
    paths = tmp_path / "first.tar.gz", tmp_path / "second.tar.gz"
    for seed, path in enumerate(paths):
        write_synthetic_archive(path, "cifar10", train_per_class=2, test_per_class=1, seed=seed)
    return paths


def _contents(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_crash_during_prepare_leaves_the_old_folder_intact(two_archives, tmp_path, monkeypatch):
    out = tmp_path / "data" / "prepared"
    prepare(two_archives[0], "cifar10", out)
    before = _contents(out)
    save = ran.data.prepare._save_npz

    def killed_after_train(path, arrays):
        if path.name == "test.npz":
            raise KeyboardInterrupt  # a kill: the new train.npz is written, test.npz and the manifest are not
        save(path, arrays)

    monkeypatch.setattr(ran.data.prepare, "_save_npz", killed_after_train)
    with pytest.raises(KeyboardInterrupt):
        prepare(two_archives[1], "cifar10", out)
    assert _contents(out) == before
    assert [path.name for path in out.parent.iterdir()] == ["prepared"], "no staging folder is left behind"


def test_prepare_into_an_existing_folder_swaps_in_the_new_files(two_archives, tmp_path):
    out = tmp_path / "prepared"
    prepare(two_archives[0], "cifar10", out)
    manifest = prepare(two_archives[1], "cifar10", out)
    assert load_manifest(out) == manifest and sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["prepared"]
    for split in ("train", "test"):
        recorded = manifest["splits"][split]["npz_sha256"]
        assert recorded == hashlib.sha256((out / f"{split}.npz").read_bytes()).hexdigest()


def test_train_refuses_a_split_its_manifest_does_not_describe(two_archives, tmp_path):
    from ran.train.run import train_run

    first, second = tmp_path / "first", tmp_path / "second"
    prepare(two_archives[0], "cifar10", first)
    prepare(two_archives[1], "cifar10", second)
    shutil.copy(second / "train.npz", first / "train.npz")  # what a kill mid-prepare used to leave
    load_split(first, "test")  # the untouched split still loads
    train, manifest, folder = (re.escape(str(path)) for path in (first / "train.npz", first / "manifest.json", first))
    with pytest.raises(DataError, match=rf"^{train} is not the file {manifest} describes \(sha256 .*\): the folder "
                                        rf"mixes files of two `ran prepare` runs; delete {folder} and run `ran "
                                        rf"prepare` again\.$"):
        train_run({"run": "r", "dataset": "cifar10"}, {}, [0], str(first), None, str(tmp_path / "out"),
                  str(tmp_path / "ckpt"))


def _tiny_keras_file(path, middle=None):
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="logits")((middle or (lambda x: x))(inputs))
    keras.Model(inputs, outputs).save(path)
    return path


def _edit_config(path, edit):
    """Rewrite config.json inside a `.keras` zip (the weights and their CRCs stay intact, as a crafted file's)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"))
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("edit", [lambda layer: layer.update(class_name="NoSuchLayer"),
                                  lambda layer: layer["config"].pop("units")], ids=["unknown_class", "removed_key"])
def test_a_tampered_keras_config_is_named_in_one_line(tmp_path, edit):
    path = _tiny_keras_file(tmp_path / "model.keras")
    _edit_config(path, edit)
    with pytest.raises(ValueError) as refused:
        load_trained_model(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: its model config (config.json) does not match this project's layers ("), message
    assert "retrain" in message and "restore the original file" in message and "\n" not in message
    assert "corrupt" not in message


def test_a_safe_mode_refusal_is_called_unsafe_never_corrupt(tmp_path):
    import keras

    path = _tiny_keras_file(tmp_path / "model.keras", keras.layers.Lambda(lambda x: x * 2))
    with pytest.raises(ValueError) as refused:
        load_trained_model(path)
    message = str(refused.value)
    assert message.startswith(f"{path} was refused as unsafe") and "arbitrary code" in message, message
    assert "corrupt" not in message and "truncated" not in message and "\n" not in message


def test_a_truncated_keras_file_is_still_called_corrupt(tmp_path):
    path = _tiny_keras_file(tmp_path / "model.keras")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cannot be read as a Keras model .*; it is truncated or corrupt"):
        load_trained_model(path)


HOLDER = textwrap.dedent("""
    import sys
    import time

    from ran.locks import hold_lock

    with hold_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of `tmp_path/ckpt/seed0` (a seed's checkpoint folder), killed at the end."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ckpt" / "seed0")],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "held\n"
    yield process
    process.kill()
    process.wait()


def test_a_second_holder_of_a_run_lock_fails_at_once_naming_the_first(tmp_path, holder):
    with pytest.raises(LockHeld) as refused:
        hold_lock(tmp_path / "ckpt" / "seed0")
    message = str(refused.value)
    held = tmp_path / "ckpt" / "seed0"
    assert f"pid {holder.pid} ({sys.executable} {tmp_path / 'holder.py'} {held})" in message, message
    assert "wait for it to finish or stop it" in message and "\n" not in message
    holder.send_signal(signal.SIGKILL)  # a crash: the kernel drops the lock with the process
    holder.wait()
    with hold_lock(tmp_path / "ckpt" / "seed0"):
        assert json.loads((tmp_path / "ckpt" / "seed0" / ".lock").read_text())["command"] == shlex.join(sys.orig_argv)


def test_ran_train_of_a_locked_run_stops_in_one_line(tmp_path, root, holder, capsys):
    with pytest.raises(SystemExit) as exit_info:  # refused before any data is read: no prepared folder is needed
        train_main(["--params", str(root / "params.yaml"), "--profile", "smoke", "--run", "c10_a56_arl_mixed",
                    "--prepared", str(tmp_path / "prepared"), "--out", str(tmp_path / "models"),
                    "--checkpoints", str(tmp_path / "ckpt"), "--no-progress"])
    message = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and "\n" not in message, message
    assert message.startswith(f"ran train: {tmp_path / 'ckpt' / 'seed0' / '.lock'} is held by pid {holder.pid} (")
    assert not (tmp_path / "models").exists(), "nothing was trained"


def test_a_finished_seed_stays_finished_when_only_the_cadence_changes(tmp_path):
    from ran.train.run import is_finished

    seed_dir = tmp_path / "seed0"
    seed_dir.mkdir()
    (seed_dir / "model.keras").write_bytes(b"model")
    (seed_dir / "train.json").write_text(json.dumps({"run": "r", "training": {**TRAINING}}))
    assert is_finished(seed_dir, {"run": "r"}, {**TRAINING, "log_every": 3, "checkpoint_every": 6})
    assert not is_finished(seed_dir, {"run": "r"}, {**TRAINING, "base_lr": 0.5})


def test_a_params_path_that_is_a_folder_or_nested_too_deeply_is_one_line(tmp_path):
    from ran.config import ConfigError, load_params

    with pytest.raises(ConfigError, match="is not a regular file"):
        load_params(tmp_path)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply") as error:
        load_params(deep)
    assert "\n" not in str(error.value)


def test_a_seed_without_a_model_is_refused_in_a_rebuild_without_training(tmp_path, root, capsys, monkeypatch):
    monkeypatch.setenv("RAN_NO_TRAINING", "1")
    prepared, archive = tmp_path / "prepared", tmp_path / "cifar10-binary.tar.gz"
    write_synthetic_archive(archive, "cifar10", train_per_class=2, test_per_class=1, seed=0)
    prepare(archive, "cifar10", prepared)
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--params", str(root / "params.yaml"), "--profile", "smoke", "--run", "c10_a56_arl_mixed",
                    "--prepared", str(prepared), "--out", str(tmp_path / "models"),
                    "--checkpoints", str(tmp_path / "ckpt"), "--seeds", "3", "--no-progress"])
    message = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and "\n" not in message, message
    assert message.startswith(f"ran train: c10_a56_arl_mixed seed 3 has no trained model in {tmp_path / 'models'}")
    assert "RAN_NO_TRAINING is set" in message and "dvc pull" in message
    assert not (tmp_path / "models").exists() and not (tmp_path / "ckpt" / "seed3" / "checkpoint").exists()
