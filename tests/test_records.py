"""`ran record`: finished real-data runs become records; synthetic, unfinished and dirty runs are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ran.records import RecordError, load_records, main, record_profile, validate_record

RUNS = ["c10_a56_arl_mixed", "c10_a56_nal_mixed"]
SHA = "ab" * 32


@pytest.fixture
def rec_params(params):
    """The matrix with a profile of our own (`rec`, official data, two runs) and two seeds."""
    mine = copy.deepcopy(params)
    mine["profiles"]["rec"] = {"data": "official", "runs": list(RUNS), "iterations": 20, "checkpoint_every": 10,
                               "log_every": 10}
    mine["seeds"] = [0, 1]
    return mine


def train_json(run_id: str, seed: int, profile: str = "rec", synthetic: bool = False, dirty: bool = False) -> dict:
    return {
        "run": run_id, "seed": seed, "training": {"name": profile, "data": "official", "iterations": 20,
                                                  "batch_size": 64, "base_lr": 0.1, "lr_decay_at": [0.4, 0.6],
                                                  "lr_decay_factor": 0.1, "momentum": 0.9, "nesterov": True,
                                                  "weight_decay": 1e-4, "pad": 4, "flip": True,
                                                  "mixed_precision": "float32"},
        "code_version": "abc1234", "code": {"commit": "1" * 40, "describe": "abc1234" + ("-dirty" if dirty else ""),
                                            "code_dirty": dirty, "dirty_paths": ["src/ran/x.py"] if dirty else [],
                                            "params_modified": True},
        "libraries": {"python": "3.11.7", "keras_backend": "tensorflow", "keras": "3.15.1"},
        "device": "AMD EPYC CPU, 2 cores (tensorflow)", "host_cpu": "AMD EPYC",
        "data": {"dataset": "cifar10", "synthetic": synthetic, "verified": "all 6 record files match",
                 "train_npz_sha256": SHA, "source_sha256": {"cifar-10-batches-bin/data_batch_1.bin": SHA}},
        "dtype_policy": "float32", "jit": False, "deterministic_ops": True, "iterations": 20, "train_wall_s": 10.0,
        "total_wall_s": 12.0, "images_per_s": 128.0, "images_per_s_steady": 130.0, "resumes": 0,
        "final_train_loss": 2.1, "final_train_accuracy": 0.25, "params": 1104154, "depth": 56,
        "started_at": "2026-11-30T20:00:00+00:00", "finished_at": "2026-11-30T20:10:00+00:00",
    }


def write_run(results: Path, run_id: str, seeds=(0, 1), evaluated=(0, 1), **train_kwargs) -> None:
    for seed in seeds:
        seed_dir = results / "models" / run_id / f"seed{seed}"
        (seed_dir / "live" / "plots" / "metrics" / "train").mkdir(parents=True)
        (seed_dir / "live" / "plots" / "metrics" / "train" / "loss.tsv").write_text("step\tloss\n10\t2.3\n20\t2.1\n")
        (seed_dir / "train.json").write_text(json.dumps(train_json(run_id, seed, **train_kwargs)))
    if evaluated is None:
        return
    seeds_metrics = [{"seed": s, "top1_error_pct": 40.0 + s, "top5_error_pct": None, "num_test": 10000,
                      "nonfinite_samples": 0, "noise_realised": None, "confusion_matrix": [[1]]} for s in evaluated]
    (results / "eval" / run_id).mkdir(parents=True)
    (results / "eval" / run_id / "metrics.json").write_text(json.dumps(
        {"run": run_id, "profile": train_kwargs.get("profile", "rec"), "status": "evaluated",
         "test_npz_sha256": SHA, "seeds": seeds_metrics}))


def test_finished_runs_become_validated_records(rec_params, tmp_path):
    results = tmp_path / "results" / "rec"
    for run_id in RUNS:
        write_run(results, run_id)
    written = record_profile(rec_params, "rec", results, tmp_path / "records")
    assert [(r["run"], r["seed"]) for r in written] == [(run, seed) for run in RUNS for seed in (0, 1)]
    entry = tmp_path / "records" / "rec" / "c10_a56_nal_mixed" / "seed1"
    assert sorted(p.name for p in entry.iterdir()) == ["history", "metrics.json", "record.json", "train.json"]
    assert (entry / "history" / "train" / "loss.tsv").read_text().endswith("20\t2.1\n")
    record = json.loads((entry / "record.json").read_text())
    assert record["result"]["top1_error_pct"] == 41.0 and record["config"]["learning"] == "NAL"
    assert record["code"] == {**train_json("x", 1)["code"], "allowed_dirty": False}
    assert record["data"]["test_npz_sha256"] == SHA and record["summary"]["images_per_s"] == 128.0
    assert [s["seed"] for s in json.loads((entry / "metrics.json").read_text())["seeds"]] == [1]
    loaded = load_records(tmp_path / "records")
    assert len(loaded) == 4 and all(Path(r["_history"]).is_dir() for r in loaded)


def test_refusals_name_the_reason(rec_params, tmp_path):
    results = tmp_path / "results" / "rec"
    with pytest.raises(RecordError, match="trains on synthetic data"):
        record_profile(rec_params, "smoke", tmp_path / "results" / "smoke", tmp_path / "records")
    write_run(results, RUNS[0], evaluated=(0,))  # seed 1 trained but not evaluated
    write_run(results, RUNS[1], seeds=(0,), evaluated=None)  # seed 1 not trained, nothing evaluated
    with pytest.raises(RecordError, match=r"2 run\(s\) .* not finished") as caught:
        record_profile(rec_params, "rec", results, tmp_path / "records")
    message = str(caught.value)
    assert "seed 1 is not in" in message and "seed 1 has no" in message and "is missing (not evaluated)" in message
    with pytest.raises(RecordError, match="does not select"):
        record_profile(rec_params, "rec", results, tmp_path / "records", runs=["c10_r164"])
    assert not (tmp_path / "records").exists(), "nothing is written when any run is refused"


@pytest.mark.parametrize("kwargs, message", [({"synthetic": True}, "trained on synthetic data"),
                                             ({"dirty": True}, "uncommitted changes to src/ran/x.py")])
def test_synthetic_and_dirty_runs_are_refused(rec_params, tmp_path, kwargs, message):
    results = tmp_path / "results" / "rec"
    write_run(results, RUNS[0], **kwargs)
    with pytest.raises(RecordError, match=message):
        record_profile(rec_params, "rec", results, tmp_path / "records", runs=[RUNS[0]])


def test_dirty_code_is_recorded_only_when_allowed_and_says_so(rec_params, tmp_path, capsys):
    results = tmp_path / "results" / "rec"
    write_run(results, RUNS[0], dirty=True)
    common = ["--profile", "rec", "--results", str(results), "--runs", RUNS[0], "--into", str(tmp_path / "rec")]
    params_path = tmp_path / "params.yaml"
    params_path.write_text(json.dumps(rec_params))  # JSON is YAML
    with pytest.raises(SystemExit) as exit_info:
        main(["--params", str(params_path), *common])
    assert exit_info.value.code == 1 and "--allow-dirty" in capsys.readouterr().err
    assert main(["--params", str(params_path), *common, "--allow-dirty"]) == 0
    assert "DIRTY, allowed: src/ran/x.py" in capsys.readouterr().err
    records = load_records(tmp_path / "rec")
    assert [r["seed"] for r in records] == [0, 1]
    assert all(r["code"]["allowed_dirty"] and r["code"]["dirty_paths"] == ["src/ran/x.py"] for r in records)


def test_a_record_of_other_settings_is_kept_unless_replaced(rec_params, tmp_path):
    results, into = tmp_path / "results" / "rec", tmp_path / "records"
    write_run(results, RUNS[0])
    record_profile(rec_params, "rec", results, into, runs=[RUNS[0]])
    assert len(record_profile(rec_params, "rec", results, into, runs=[RUNS[0]])) == 2  # same settings: re-recorded
    for seed in (0, 1):
        path = results / "models" / RUNS[0] / f"seed{seed}" / "train.json"
        train = json.loads(path.read_text())
        train["training"]["batch_size"] = 128
        path.write_text(json.dumps(train))
    with pytest.raises(RecordError, match=r"other settings \(batch_size 64 -> 128\).*--replace"):
        record_profile(rec_params, "rec", results, into, runs=[RUNS[0]])
    assert {r["training"]["batch_size"] for r in load_records(into)} == {64}, "the earlier trial is kept"
    record_profile(rec_params, "rec", results, into, runs=[RUNS[0]], replace=True)
    assert {r["training"]["batch_size"] for r in load_records(into)} == {128}


def test_schema_rejects_a_malformed_record(rec_params, tmp_path):
    results = tmp_path / "results" / "rec"
    write_run(results, RUNS[0])
    (record, _) = record_profile(rec_params, "rec", results, tmp_path / "records", runs=[RUNS[0]])
    with pytest.raises(RecordError, match=r"result.top1_error_pct: 140.0 is greater than the maximum of 100"):
        validate_record({**record, "result": {**record["result"], "top1_error_pct": 140.0}})
    with pytest.raises(RecordError, match="Additional properties"):
        validate_record({**record, "comment": "typed by hand"})
