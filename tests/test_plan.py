"""`ran plan`: images per run and in all, time at recorded speeds, a loud warning for GPU-sized work on a CPU."""

from __future__ import annotations

from ran.plan import build_plan, plan_text, recorded_speeds
from test_report_recorded import make_record


def test_cpu_speeds_give_times_and_a_gpu_sized_profile_is_announced(params):
    records = [make_record(params, "c10_a56_arl_mixed", 0, 40.0)]  # 128 images/s on "AMD EPYC CPU, 2 cores"
    speeds = recorded_speeds(records, gpu=False)
    assert speeds == {"attention56": 128.0} and recorded_speeds(records, gpu=True) == {}
    cpu = build_plan(params, "cpu", speeds)
    assert [row["images"] for row in cpu["rows"]] == [1400 * 64] * 2 and cpu["complete"]
    text = plan_text(cpu, gpu=False, source="records")
    assert "179,200 training images" in text and "estimated training time 23 min" in text and "WARNING" not in text
    paper = build_plan(params, "paper", speeds)
    assert paper["images"] == 29 * 160_000 * 64 and paper["complete"] and paper["estimated"] == 22
    text = plan_text(paper, gpu=False, source="records")
    assert "22 of 29 run(s) estimated by MACs" in text and "WARNING: profile paper is sized for GPUs" in text
    assert "WARNING" not in plan_text(paper, gpu=True, source="records")


def test_no_records_no_times_but_the_image_counts(params):
    text = plan_text(build_plan(params, "smoke", {}), gpu=False, source="none")
    assert "no speed known" in text and "estimated" not in text and f"{29 * 2 * 8:,} training images" in text


def test_probes_say_what_they_do_and_are_kept_per_machine(params, monkeypatch, tmp_path, capsys):
    import json

    import ran.plan as plan

    calls = []

    def bench(command, **kwargs):
        calls.append(command[command.index("--network") + 1])
        out = command[command.index("--out") + 1]
        with open(out, "w") as file:
            json.dump({"train_images_per_s": 40.0, "build_s": 2.0, "compile_s": 8.0, "measured_at": "today"}, file)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(plan.subprocess, "run", bench)
    first = plan.probe_speeds(params, "cpu_fast")
    assert calls == ["attention56", "resnet164"] and first == ({"attention56": 40.0, "resnet164": 40.0},
                                                                {"attention56": 10.0, "resnet164": 10.0})
    assert "plan: probing attention56 (1/2)" in capsys.readouterr().err
    assert plan.probe_speeds(params, "cpu_fast") == first and len(calls) == 2  # kept: nothing measured again
    assert "probed here before (today" in capsys.readouterr().err
    plan.probe_speeds(params, "cpu_fast", fresh=True)
    assert len(calls) == 4
