"""`ran train` + `ran evaluate` end to end on a tiny synthetic prepared dataset with a tiny network; SIGKILL resume."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import ran.models
import ran.train.run
from ran.data.noise import write_noisy_labels
from ran.evaluate import main as evaluate_main
from ran.train.run import main as train_main
from test_train_loop import tiny_network

METRICS_KEYS = {"run", "profile", "status", "config", "test_npz_sha256", "params", "depth", "top1_error_pct",
                "top5_error_pct", "top1_error_pct_flip_tta", "seeds"}
SEED_KEYS = {"seed", "top1_error_pct", "top5_error_pct", "per_class_error_pct", "confusion_matrix", "num_test",
             "nonfinite_samples", "noise_realised", "top1_error_pct_flip_tta", "validation_error_pct",
             "train_images_per_s", "train_wall_s", "train_precision",
             "train_device"}


@pytest.fixture
def workspace(tmp_path, root, monkeypatch):
    """A prepared dataset (48 train, 20 test images), a params file with 2 seeds, and the tiny network patched in."""
    rng = np.random.default_rng(0)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for split, n in (("train", 48), ("test", 20)):
        np.savez(prepared / f"{split}.npz", images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 labels=np.arange(n, dtype=np.int64) % 10)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["seeds"] = [0, 1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(ran.train.run, "network_factory", lambda run, weight_decay: lambda: tiny_network())
    monkeypatch.setattr(ran.train.run, "describe_network", lambda network: {"params": 123, "depth": 2})
    monkeypatch.setattr(ran.models, "soft_masks",
                        lambda model, images: {"stage1_module1": np.full((len(images), 8, 8), 0.5, np.float32)})
    return tmp_path


def cli(workspace: Path, run: str, *extra: str) -> list[str]:
    return ["--params", str(workspace / "params.yaml"), "--run", run, "--prepared", str(workspace / "prepared"),
            *extra]


def smoke_iterations(workspace: Path) -> int:
    return yaml.safe_load((workspace / "params.yaml").read_text())["profiles"]["smoke"]["iterations"]


def test_train_then_evaluate(workspace):
    run, models = "c10_a56_arl_mixed", workspace / "models"
    assert train_main(cli(workspace, run, "--profile", "smoke", "--out", str(models), "--checkpoints",
                          str(workspace / "ckpt"), "--no-progress")) == 0
    for seed in (0, 1):
        assert {p.name for p in (models / f"seed{seed}").iterdir()} == {"model.keras", "train.json", "live"}
        record = json.loads((models / f"seed{seed}" / "train.json").read_text())
        assert record["network"] == "attention56" and record["training"]["iterations"] == smoke_iterations(workspace)
        assert record["params"] == 123 and record["noise_realised"] is None
    assert not any((workspace / "ckpt").glob("seed*"))

    stamp = (models / "seed0" / "train.json").stat().st_mtime_ns
    assert train_main(cli(workspace, run, "--profile", "smoke", "--out", str(models), "--checkpoints",
                          str(workspace / "ckpt"), "--no-progress")) == 0
    assert (models / "seed0" / "train.json").stat().st_mtime_ns == stamp, "a finished seed is not retrained"

    out = workspace / "eval"
    # A note left by an earlier selection that left the run out: the profile decides, and it selects the run.
    (models / "not_selected.json").write_text('{"reason": "an earlier selection"}')
    assert evaluate_main(cli(workspace, run, "--profile", "smoke", "--models", str(models), "--out", str(out))) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == METRICS_KEYS
    assert metrics["run"] == run and metrics["profile"] == "smoke" and metrics["top5_error_pct"] is None
    assert metrics["config"] == {"dataset": "cifar10", "network": "attention56", "attention": "mixed",
                                 "learning": "ARL", "mask": "encoder_decoder", "noise": 0.0}
    assert (metrics["params"], metrics["depth"]) == (123, 2)
    assert [s["seed"] for s in metrics["seeds"]] == [0, 1]
    errors = [s["top1_error_pct"] for s in metrics["seeds"]]
    assert metrics["top1_error_pct"] == pytest.approx({"mean": np.mean(errors), "std": np.std(errors, ddof=1),
                                                       "n": 2})
    for entry in metrics["seeds"]:
        assert set(entry) == SEED_KEYS and entry["num_test"] == 20
        assert np.array(entry["confusion_matrix"]).sum() == 20 and len(entry["per_class_error_pct"]) == 10
        assert entry["train_images_per_s"] > 0
    assert json.loads((out / "score.json").read_text()) == pytest.approx(
        {"top1_err": np.mean(errors), "top1_std": np.std(errors, ddof=1), "seeds": 2})
    with np.load(out / "masks.npz") as masks:
        assert set(masks.files) == {"images", "stage1_module1", "stage1"}
        assert masks["images"].shape == (8, 32, 32, 3) and masks["stage1"].shape == (8, 8, 8)


def test_noisy_run_reads_the_seed_s_labels_and_reports_the_realised_fraction(workspace):
    run, models, noisy = "c10_r164_noise10", workspace / "models", workspace / "noisy"
    with np.load(workspace / "prepared" / "train.npz") as data:
        realised = write_noisy_labels(data["labels"], 0.1, 1, 10, noisy)["realised_fraction"]
    base = cli(workspace, run, "--profile", "smoke", "--out", str(models), "--checkpoints", str(workspace / "ckpt"),
               "--seeds", "1", "--no-progress")
    with pytest.raises(SystemExit, match="1"):
        train_main(base)  # label noise needs --noisy
    assert train_main([*base, "--noisy", str(noisy)]) == 0
    assert evaluate_main(cli(workspace, run, "--models", str(models), "--out", str(workspace / "eval"),
                             "--seeds", "1")) == 0
    metrics = json.loads((workspace / "eval" / "metrics.json").read_text())
    assert metrics["seeds"][0]["noise_realised"] == realised and metrics["config"]["noise"] == 0.1
    with np.load(workspace / "eval" / "masks.npz") as masks:
        assert masks.files == ["images"] and masks["images"].shape == (0, 32, 32, 3)


def test_evaluate_names_a_missing_model(workspace, capsys):
    with pytest.raises(SystemExit):
        evaluate_main(cli(workspace, "c10_a56_arl_mixed", "--models", str(workspace / "none"), "--out",
                          str(workspace / "eval")))
    assert "ran train" in capsys.readouterr().err


TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    from test_train_loop import TRAINING, train
    from pathlib import Path
    train(Path(sys.argv[1]), sys.argv[2], training={**TRAINING, "iterations": 60, "checkpoint_every": 10,
                                                     "log_every": 5})
""")


@pytest.mark.slow
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path):
    from test_train_loop import history, weights

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", TRAIN_SCRIPT, str(tmp_path)]
    victim = subprocess.Popen([*command, "killed"], env=env, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "ckpt" / "state.npz"
    deadline = time.monotonic() + 300
    while not state.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.exists() and victim.poll() is None, "the run should be mid-way, past its first checkpoint"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "out").exists()
    subprocess.run([*command, "killed"], env=env, check=True, stderr=subprocess.DEVNULL)
    subprocess.run([*command, "whole"], env=env, check=True, stderr=subprocess.DEVNULL)
    killed, whole = tmp_path / "killed" / "out", tmp_path / "whole" / "out"
    assert json.loads((killed / "train.json").read_text())["resumes"] == 1
    for expected, actual in zip(weights(whole), weights(killed), strict=True):
        np.testing.assert_array_equal(actual, expected)
    assert history(killed) == history(whole)


def test_a_full_disk_ends_in_one_line_naming_the_file(workspace, monkeypatch, capsys):
    import ran.train.checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ran.train.checkpoint.np, "savez", full)
    with pytest.raises(SystemExit) as exit_info:
        train_main(cli(workspace, "c10_a56_arl_mixed", "--profile", "smoke", "--out", str(workspace / "models"),
                       "--checkpoints", str(workspace / "ckpt"), "--no-progress"))
    message = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and "\n" not in message
    assert message.startswith(f"ran train: cannot write {workspace / 'ckpt' / 'seed0' / 'state.next.npz'}: No space")


def test_evaluate_names_a_damaged_file_and_the_remedy(workspace, capsys):
    run, models = "c10_a56_arl_mixed", workspace / "models"
    assert train_main(cli(workspace, run, "--profile", "smoke", "--out", str(models), "--checkpoints",
                          str(workspace / "ckpt"), "--seeds", "0", "--no-progress")) == 0
    evaluate = cli(workspace, run, "--models", str(models), "--out", str(workspace / "eval"), "--seeds", "0")
    cases = [(models / "seed0" / "model.keras", "cannot be read as a Keras model"),
             (models / "seed0" / "train.json", "cannot be read as JSON"),
             (workspace / "prepared" / "test.npz", "cannot be read (")]
    for path, message in cases:
        original = path.read_bytes()
        path.write_bytes(original[: len(original) // 2])
        with pytest.raises(SystemExit) as exit_info:
            evaluate_main(evaluate)
        error = capsys.readouterr().err
        assert exit_info.value.code == 1 and f"{path}" in error and message in error, error
        path.write_bytes(original)
    assert evaluate_main(evaluate) == 0


A56_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    import numpy as np

    from ran.runtime import prepare_runtime

    prepare_runtime(training_precision="float32")  # as `ran train` does: one inter-op thread, AVX2 oneDNN on AVX-512
    from ran.models import build_network
    from ran.train.loop import Interrupted, train_seed

    folder, stop = Path(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 64)
    training = {"batch_size": 4, "base_lr": 0.1, "lr_decay_at": [0.4, 0.6], "lr_decay_factor": 0.1, "momentum": 0.9,
                "nesterov": True, "weight_decay": 1e-4, "pad": 4, "flip": True, "mixed_precision": "float32",
                "jit": "auto", "iterations": 6, "checkpoint_every": 2, "log_every": 1, "name": "determinism"}
    try:
        train_seed(lambda: build_network("attention56", 10), images, labels, training, 0, folder / "out",
                   folder / "ckpt", record={"run": "a56"}, progress=False, interrupt_after=stop or None)
    except Interrupted:
        pass
""")


@pytest.mark.slow
def test_attention56_same_seed_in_separate_processes_gives_byte_equal_weights(tmp_path):
    """The real network, several fit segments, and a run interrupted after iteration 4 and resumed in a third
    process: every weight of the final models is equal byte for byte (what the README promises on CPU)."""
    from ran.runtime import cpu_isa
    from test_train_loop import weights

    isa = cpu_isa()
    print(f"determinism test on a CPU whose widest vector ISA is {isa}")
    env = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
    env["PYTHONPATH"] = str(Path(__file__).parent)
    for name, stop in (("whole", 0), ("resumed", 4), ("resumed", 0)):
        subprocess.run([sys.executable, "-c", A56_SCRIPT, str(tmp_path / name), str(stop)], env=env, check=True,
                       stderr=subprocess.DEVNULL)
    assert json.loads((tmp_path / "resumed" / "out" / "train.json").read_text())["resumes"] == 1
    whole, resumed = weights(tmp_path / "whole" / "out"), weights(tmp_path / "resumed" / "out")
    assert len(whole) == len(resumed) > 400
    differing = [i for i, (a, b) in enumerate(zip(whole, resumed, strict=True)) if a.tobytes() != b.tobytes()]
    assert differing == [], f"{len(differing)} of {len(whole)} weight arrays differ on this {isa} CPU"


def test_ctrl_c_is_one_line_naming_the_checkpoint(workspace, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    def leave(code):
        raise SystemExit(code)

    monkeypatch.setattr(ran.train.run, "train_run", interrupt)
    monkeypatch.setattr(ran.train.run.os, "_exit", leave)
    with pytest.raises(SystemExit) as exit_info:
        train_main(cli(workspace, "c10_a56_arl_mixed", "--profile", "smoke", "--out", str(workspace / "models"),
                       "--checkpoints", str(workspace / "ckpt"), "--no-progress"))
    message = capsys.readouterr().err.strip()
    assert exit_info.value.code == 130 and "\n" not in message
    assert message == (f"ran train: interrupted; the last checkpoint is in {workspace / 'ckpt'}: rerun the same "
                       f"command to resume from it")


def test_a_seed_says_when_it_starts_and_when_it_resumes(tmp_path, capsys):
    from test_train_loop import TRAINING, Interrupted, train

    with pytest.raises(Interrupted):
        train(tmp_path, "a", interrupt_after=4)
    train(tmp_path, "a")
    lines = [line for line in capsys.readouterr().out.splitlines() if "iteration" in line and "at " in line]
    assert lines == [f"train: tiny seed 0: starting at iteration 0/12, checkpoint every 4 iterations in "
                     f"{tmp_path / 'a' / 'ckpt'}", f"train: tiny seed 0: resuming at iteration 4/12, checkpoint "
                     f"every 4 iterations in {tmp_path / 'a' / 'ckpt'}"]
    assert TRAINING["checkpoint_every"] == 4
