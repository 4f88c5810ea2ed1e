"""`ran plan`: images per run and in all, time at recorded speeds (training, and the start-up, builds and evaluation
of every job), a loud warning for GPU-sized work on a CPU, and a steady probe."""

from __future__ import annotations

import json

import pytest

import ran.plan as plan
from ran.plan import build_plan, plan_text, recorded_overheads, recorded_speeds
from test_report_recorded import make_record


def test_cpu_speeds_give_times_and_a_gpu_sized_profile_is_announced(params):
    records = [make_record(params, "c10_a56_arl_mixed", 0, 40.0)]  # 128 images/s on "AMD EPYC CPU, 2 cores"
    speeds = recorded_speeds(records, gpu=False)
    assert speeds == {"attention56": 128.0} and recorded_speeds(records, gpu=True) == {}
    cpu = build_plan(params, "cpu", speeds)
    assert [row["images"] for row in cpu["rows"]] == [1400 * 64] * 2 and cpu["complete"]
    text = plan_text(cpu, gpu=False, source="records")
    # 1,400 s of training a run, 26 min with two runs' start-ups, builds and 2 x 2 x 10,000 test images.
    assert "179,200 training images" in text and "WARNING" not in text
    assert "estimated time 26 min incl. start-up, builds and evaluation" in text and "training 23 min" in text
    assert "evaluation of 40,000 test images" in text
    paper = build_plan(params, "paper", speeds)
    assert paper["images"] == 29 * 160_000 * 64 and paper["complete"] and paper["estimated"] == 22
    text = plan_text(paper, gpu=False, source="records")
    assert "22 of 29 run(s) estimated by MACs" in text and "WARNING: profile paper is sized for GPUs" in text
    assert "WARNING" not in plan_text(paper, gpu=True, source="records")


def test_no_records_no_times_but_the_image_counts(params):
    text = plan_text(build_plan(params, "smoke", {}), gpu=False, source="none")
    assert "no speed known" in text and "estimated" not in text and f"{29 * 2 * 8:,} training images" in text


def test_the_jobs_around_training_are_in_the_total_and_grow_with_the_jobs(params):
    speeds = {"attention56": 100.0}
    one = build_plan(params, "smoke", speeds, runs=["c10_a56_arl_mixed"])
    two = build_plan(params, "smoke", speeds, runs=["c10_a56_arl_mixed", "c10_a56_nal_mixed"])
    deep = build_plan(params, "smoke", speeds, runs=["c10_a452_arl_mixed"])
    for each in (one, two, deep):
        parts = each["training_seconds"] + each["jobs_seconds"] + each["eval_seconds"] + each["fixed_seconds"]
        assert each["known_seconds"] == pytest.approx(parts)
    row = one["rows"][0]
    assert row["total_s"] == pytest.approx(row["seconds"] + row["jobs_s"] + row["eval_s"])
    assert row["jobs_s"] == pytest.approx(2 * plan.JOB_START_S + 261 * plan.BUILD_S_PER_LAYER)  # 2 jobs, 1 seed
    assert row["eval_s"] == pytest.approx(2 * 40 / (100.0 * plan.FORWARD_SPEEDUP))  # 2 views, 4 images a class
    assert row["jobs_s"] > 10 * row["seconds"]  # 2 iterations of batch 8: the jobs are nearly all of it
    assert two["jobs_seconds"] == pytest.approx(2 * one["jobs_seconds"])
    # A second run adds its own total; its two jobs no longer only write a note.
    assert two["known_seconds"] - one["known_seconds"] == pytest.approx(row["total_s"] - 2 * plan.LIGHT_JOB_S)
    assert deep["jobs_seconds"] > 5 * one["jobs_seconds"]  # Attention-452: 10x the layers of Attention-56
    assert one["fixed_seconds"] >= plan.REPORT_S
    seeds = build_plan({**params, "seeds": [0, 1, 2]}, "smoke", speeds, runs=["c10_a56_arl_mixed"])
    start = 2 * plan.JOB_START_S  # per job; the builds are per seed
    assert seeds["jobs_seconds"] - start == pytest.approx(3 * (one["jobs_seconds"] - start))


def test_the_smoke_plan_counts_its_jobs_and_matches_the_measured_dag(params, root):
    from ran.records import load_records

    records = load_records(root / "workflow/resources/records")
    speeds, overheads = recorded_speeds(records, gpu=False), recorded_overheads(records, gpu=False)
    smoke = build_plan(params, "smoke", speeds, overheads)
    training_only = sum(row["images"] / row["images_per_s"] for row in smoke["rows"])
    assert training_only < 60  # 16 images a run: the steps alone are nothing
    assert smoke["jobs_seconds"] > 10 * 60 and smoke["known_seconds"] > 20 * training_only
    # The whole smoke DAG took 21 min on the AMD EPYC VM the records come from (README, Profiles).
    assert 21 * 60 / 1.5 < smoke["known_seconds"] < 21 * 60 * 1.5
    text = plan_text(smoke, gpu=False, source="records", full=False)
    assert "start-up of 58 train/evaluate jobs" in text and "model builds included" in text
    assert "-> 0 min" not in text
    assert [plan.duration(s) for s in (25, 59.4, 59.6, 3599)] == ["25 s", "59 s", "1 min", "1.0 h"]


def test_every_network_has_a_layer_count():
    assert set(plan.KERAS_LAYERS) == set(plan.FORWARD_MACS)


def fake_clock(durations: dict[int, float], default: float):
    """A clock and a step: step `index` advances the clock by `durations.get(index, default)` seconds."""
    now, called = [0.0], []

    def clock() -> float:
        return now[0]

    def step(index: int) -> None:
        called.append(index)
        now[0] += durations.get(index, default)

    return clock, step, called


def test_the_probe_takes_the_median_step_after_a_warm_up():
    clock, step, called = fake_clock({0: 30.0, 3: 40.0}, 0.5)  # compiling warm-up, then one disturbed step
    timing = plan.steady_step_seconds(step, clock, min_wall_s=2.0, min_steps=5, max_steps=100)
    assert called == [0, 1, 2, 3, 4, 5] and timing["warmup_s"] == 30.0  # the warm-up is timed apart
    assert timing["steps"] == 5 and timing["step_s"] == 0.5  # the mean would be 8.4 s
    clock, step, called = fake_clock({0: 30.0}, 0.5)
    timing = plan.steady_step_seconds(step, clock, min_wall_s=3.0, min_steps=2, max_steps=100)
    assert timing["steps"] == 6 and timing["timed_s"] == pytest.approx(3.0)  # steps until 3 s have passed
    clock, step, called = fake_clock({}, 0.001)
    assert plan.steady_step_seconds(step, clock, min_wall_s=3.0, min_steps=2, max_steps=40)["steps"] == 40


def probe_result(images_per_s: float = 40.0) -> dict:
    return {"probe": plan.PROBE_VERSION, "images_per_s": images_per_s, "warmup_s": 8.0, "build_s": 2.0,
            "step_s": 64 / images_per_s, "steps": 5, "measured_at": "today"}


@pytest.fixture
def fake_probe(monkeypatch, tmp_path):
    """`probe_speeds` with its probe process faked: returns the list of networks probed."""
    calls = []

    def run(command, **kwargs):
        assert command[1:3] == ["-c", plan.PROBE_COMMAND]
        network, batch, precision, out = command[3:]
        calls.append(network)
        with open(out, "w") as file:
            json.dump(probe_result(), file)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(plan.subprocess, "run", run)
    return calls


def test_probes_say_what_they_do_and_are_kept_per_machine(params, fake_probe, capsys):
    first = plan.probe_speeds(params, "cpu_fast")
    assert fake_probe == ["attention56", "resnet164"] and first == ({"attention56": 40.0, "resnet164": 40.0},
                                                                     {"attention56": 8.0, "resnet164": 8.0})
    err = capsys.readouterr().err
    assert "plan: probing attention56 (1/2): a build, a warm-up step" in err and "(median of 5 steps)" in err
    assert plan.probe_speeds(params, "cpu_fast") == first and len(fake_probe) == 2  # kept: nothing measured again
    assert "probed here before (today" in capsys.readouterr().err
    plan.probe_speeds(params, "cpu_fast", fresh=True)
    assert len(fake_probe) == 4


def test_an_old_probe_cache_is_measured_again_not_a_crash(params, fake_probe, capsys):
    path = plan.probe_cache_path()
    path.parent.mkdir(parents=True)
    old = {"images_per_s": 99.0, "overhead_s": 10.0, "measured_at": "2026-11-30"}  # the 3-step probe's entry
    path.write_text(json.dumps({plan.probe_key("attention56", 128, "float32"): old,
                                plan.probe_key("resnet164", 128, "float32"): "garbage"}))
    assert plan.probe_speeds(params, "cpu_fast")[0] == {"attention56": 40.0, "resnet164": 40.0}
    assert fake_probe == ["attention56", "resnet164"]
    assert "(the probe kept for it is of an older kind)" in capsys.readouterr().err
    cache = json.loads(path.read_text())
    assert all(entry["probe"] == plan.PROBE_VERSION for entry in cache.values())
    path.write_text("[1, 2]")  # a cache that is no mapping at all
    assert plan.probe_speeds(params, "cpu_fast")[0] == {"attention56": 40.0, "resnet164": 40.0}
    assert len(fake_probe) == 4


def test_validation_passes_are_not_counted_as_a_jobs_fixed_cost():
    """A fast-recipe record's time outside the training loop is mostly its validation passes, which grow with the
    iterations: only records without a validation split say what a job costs besides training."""
    def record(total, train, validation):
        return {"summary": {"total_wall_s": total, "train_wall_s": train}, "config": {"network": "attention56"},
                "training": {"validation": validation}, "device": "a CPU, 2 cores (tensorflow)"}

    plain = [record(103.0, 100.0, 0), record(103.0, 100.0, None)]
    assert recorded_overheads(plain, gpu=False) == {"attention56": 3.0}
    validated = [record(1200.0, 100.0, 5000), record(600.0, 100.0, 5000)]
    assert recorded_overheads([*plain, *validated], gpu=False) == {"attention56": 3.0}
