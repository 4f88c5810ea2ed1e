"""What a newcomer meets first (issue 19): the plan guard, refused overrides, local copies, one-line config errors,
and the plan's estimates for networks without a recorded speed."""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
import yaml

import ran.plan as plan_module
import workflow_dag as dag
from ran.config import (
    ConfigError,
    check_local_copies,
    check_overrides,
    differing_keys,
    flag,
    read_yaml,
    validate_params,
)
from ran.plan import (
    DAY_S,
    FORWARD_MACS,
    announce,
    build_plan,
    duration,
    guard,
    plan_text,
    recorded_overheads,
    recorded_speeds,
    worst_seconds,
)

RECORDS = "workflow/resources/records"


def record(network: str, images_per_s: float, device="AMD EPYC CPU, 2 cores (tensorflow)", total=None, train=None):
    """The fields of a record (ran.records) that the plan reads."""
    summary = {"images_per_s": images_per_s, "total_wall_s": total, "train_wall_s": train}
    return {"summary": summary, "device": device, "config": {"network": network}}


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(plan_module, "_gpu_here", lambda: False)


def run(args, cwd, **kwargs):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def repo(root, tmp_path_factory):
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs git and a git checkout of the project")
    return dag.copy_repo(root, tmp_path_factory.mktemp("front-door"))


def edit_params(repo, tmp_path, change):
    """A copy of `repo` whose params.yaml is `change(text)`."""
    copied = dag.copy_repo(repo, tmp_path / "copy")
    path = copied / "params.yaml"
    text = path.read_text()
    changed = change(text)
    assert changed != text
    path.write_text(changed)
    return copied


# 1. The plan guard.


def test_a_gpu_sized_plan_stops_in_one_line_naming_the_profiles_that_fit(params, root, no_gpu):
    stop = guard(params, "paper", str(root / RECORDS))
    assert stop is not None and "\n" not in stop
    assert stop.startswith("plan: stopped before the first job: profile paper needs ")
    assert "`--config profile=smoke`" in stop and "`profile=cpu`:" in stop and "`profile=cpu_fast`:" in stop
    assert "`profile=fast`" not in stop and "`profile=quick`" not in stop  # GPU-sized profiles are no alternative
    assert "run on a GPU" in stop and stop.endswith("go ahead anyway with `--config allow_long=true`")
    assert guard(params, "paper", str(root / RECORDS), allow_long=True) is None
    assert guard(params, "cpu", str(root / RECORDS)) is None
    assert guard(params, "paper", str(root / RECORDS), runs=[]) is None  # nothing left to train: no stop
    one = guard(params, "paper", str(root / RECORDS), runs=["c10_a56_arl_mixed"])  # only what this call trains
    _, speeds, overheads = plan_module._recorded(str(root / RECORDS))
    alone = build_plan(params, "paper", speeds, overheads, runs=["c10_a56_arl_mixed"])
    assert one is not None and f"needs {duration(worst_seconds(alone))} of training" in one and one != stop


def test_the_guard_never_stops_on_a_gpu_or_without_an_estimate(params, root, monkeypatch, tmp_path):
    monkeypatch.setattr(plan_module, "_gpu_here", lambda: True)
    assert guard(params, "paper", str(root / RECORDS)) is None  # GPU records: none, so no estimate either
    monkeypatch.setattr(plan_module, "_gpu_here", lambda: False)
    assert guard(params, "paper", str(tmp_path / "no-records")) is None


def test_announce_prints_one_line_per_network_for_a_large_matrix(params, root, no_gpu, capsys):
    announce(params, "paper", str(root / RECORDS))
    lines = capsys.readouterr().err.splitlines()
    networks = {run["network"] for run in params["runs"].values()}
    assert len(lines) == 1 + len(networks) + 3, lines  # header, networks, "ran plan lists", total, warning
    assert "`ran plan --profile paper` lists every run" in lines[-3]
    assert lines[-1].startswith("plan: WARNING") and "unless `--config allow_long=true`" in lines[-1]
    announce(params, "paper", str(root / RECORDS), allow_long=True)
    assert capsys.readouterr().err.splitlines()[-1].startswith("plan: allow_long is set: going ahead with ")
    announce(params, "cpu", str(root / RECORDS))
    assert sum("c10_a56_" in line for line in capsys.readouterr().err.splitlines()) == 2  # few runs: each shown


def test_ran_plan_lists_every_run(params, root, capsys):
    assert plan_module.main(["--params", str(root / "params.yaml"), "--profile", "paper",
                             "--records", str(root / RECORDS)]) == 0
    out = capsys.readouterr().out
    assert all(f"plan:   {run_id} " in out for run_id in params["runs"])


def test_a_real_run_of_a_gpu_sized_profile_stops_before_its_first_job(repo, tmp_path):
    if plan_module.has_gpu():
        pytest.skip("the guard only stops a machine without a GPU")
    # Should the guard fail, the first job (a download) fails at once instead of fetching CIFAR.
    copied = edit_params(repo, tmp_path, lambda text: text.replace("url: https://www.cs.toronto.edu/~kriz/",
                                                                   f"url: file://{tmp_path}/absent/"))
    dry = run(["snakemake", "-n", "--cores", "1"], copied, timeout=300)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    printed = dry.stdout + dry.stderr
    assert printed.count("plan: profile paper:") == 1 and "plan: stopped" not in printed
    assert sum(line.startswith("plan:") for line in printed.splitlines()) <= 12
    result = run(["snakemake", "--cores", "1"], copied, timeout=300)
    assert result.returncode != 0
    assert result.stderr.rstrip().splitlines()[-1].startswith("plan: stopped before the first job: profile paper")
    assert "rule download" not in result.stdout + result.stderr and not (copied / "data").exists()


def test_allow_long_from_the_command_line_is_a_boolean(params):
    assert flag({**params, "allow_long": "true"}, "allow_long")["allow_long"] is True
    assert flag({**params, "allow_long": "False"}, "allow_long")["allow_long"] is False
    validate_params(flag({**params, "allow_long": "true"}, "allow_long"))
    with pytest.raises(ConfigError, match="allow_long: 'maybe' is not of type 'boolean'"):
        validate_params(flag({**params, "allow_long": "maybe"}, "allow_long"))


# 2. Overrides other than `profile` are refused.


def test_differing_keys_are_dotted_leaf_paths():
    on_disk = {"profile": "paper", "profiles": {"smoke": {"iterations": 2, "log_every": 1}}, "seeds": [0]}
    resolved = {"profile": "smoke", "profiles": {"smoke": {"iterations": 4, "log_every": 1}}, "seeds": [0], "x": 1}
    assert differing_keys(resolved, on_disk) == ["profile", "profiles.smoke.iterations", "x"]
    assert differing_keys({"a": {}}, {"a": {"b": 1}}) == ["a.b"]


def test_overrides_of_keys_the_jobs_read_are_refused_in_one_line(params):
    check_overrides({**params, "profile": "smoke", "allow_long": True}, params)  # the command line's two keys
    changed = copy.deepcopy(params)
    changed["profiles"]["smoke"]["iterations"] = 4
    with pytest.raises(ConfigError) as caught:
        check_overrides(changed, params)
    message = str(caught.value)
    assert "\n" not in message and "change profiles.smoke.iterations, but the jobs read params.yaml" in message
    assert "set `profiles.smoke.iterations:` in params.yaml instead" in message


def test_a_configfile_override_stops_the_workflow(repo, tmp_path):
    mine = read_yaml(repo / "params.yaml")
    mine["profiles"]["smoke"]["iterations"] = 4
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(mine))
    result = run(["snakemake", "-n", "--configfile", str(tmp_path / "my.yaml"), "--config", "profile=smoke"], repo,
                 timeout=300)
    assert result.returncode != 0
    last = result.stderr.rstrip().splitlines()[-1]
    assert last.startswith("--config/--configfile change profiles.smoke.iterations, but the jobs read params.yaml")
    assert "Building DAG of jobs" not in result.stdout + result.stderr


# 3. A configured local copy must exist before the DAG starts.


def test_a_missing_local_copy_is_one_line_naming_key_and_path(params, tmp_path):
    missing = copy.deepcopy(params)
    missing["datasets"]["cifar10"]["local"] = "cifar-10-binary.tar.gz"
    with pytest.raises(ConfigError) as caught:
        check_local_copies(missing, "cpu", base_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(
        f"datasets.cifar10.local in params.yaml is 'cifar-10-binary.tar.gz', but {tmp_path}/cifar-10-binary.tar.gz "
        "does not exist")
    check_local_copies(missing, "smoke", base_dir=tmp_path)  # a synthetic profile reads no local copy
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"")
    check_local_copies(missing, "cpu", base_dir=tmp_path)
    missing["datasets"]["cifar100"]["local"] = str(tmp_path / "absent")
    check_local_copies(missing, "cpu", base_dir=tmp_path)  # the cpu profile trains no CIFAR-100 run
    with pytest.raises(ConfigError, match=r"datasets\.cifar100\.local in params\.yaml is "):
        check_local_copies(missing, "paper", base_dir=tmp_path)


def test_a_missing_local_copy_stops_the_workflow_before_the_dag(repo, tmp_path):
    copied = edit_params(repo, tmp_path, lambda text: text.replace(
        "    url: https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz\n",
        "    url: https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz\n    local: /nonexistent/cifar-10\n", 1))
    result = run(["snakemake", "-n", "--config", "profile=cpu"], copied, timeout=300)
    assert result.returncode != 0
    assert result.stderr.rstrip().splitlines()[-1].startswith(
        "datasets.cifar10.local in params.yaml is '/nonexistent/cifar-10', but /nonexistent/cifar-10 does not exist")
    assert "Building DAG of jobs" not in result.stdout + result.stderr


# 6. Schema errors: one line per problem, where the key belongs, the closest name.


@pytest.mark.parametrize(("mutate", "line"), [
    (lambda p: p.update(iterations=4),
     "params.yaml is invalid: iterations is not a top-level key; it belongs under profiles.<name>.iterations"),
    (lambda p: p.update(batch_size=4), "batch_size is not a top-level key; it belongs under training.batch_size or "
                                       "profiles.<name>.batch_size"),
    (lambda p: p["training"].update(iterations=4),
     "iterations is not a key of training; it belongs under profiles.<name>.iterations"),
    (lambda p: p.update(profile="quik"), "profile: 'quik' is not one of"),
    (lambda p: p["runs"]["c10_a56_arl_mixed"].update(attention="mixd"), "(did you mean mixed?)"),
    (lambda p: p["runs"]["c10_r164"].update(netwrok="resnet164"), "netwrok is not a key of runs.c10_r164 "
                                                                  "(did you mean network?)"),
])
def test_a_config_error_is_one_line_saying_where_the_key_belongs(params, mutate, line):
    bad = copy.deepcopy(params)
    mutate(bad)
    with pytest.raises(ConfigError) as caught:
        validate_params(bad)
    assert "\n" not in str(caught.value) and line in str(caught.value)


def test_a_profile_typo_names_the_closest_profile(params):
    with pytest.raises(ConfigError, match=r"\(did you mean quick\?\)$"):
        validate_params({**params, "profile": "quik"})


def test_several_problems_are_one_line_each(params):
    bad = copy.deepcopy(params)
    bad.update(iterations=4, seeds=[])
    with pytest.raises(ConfigError) as caught:
        validate_params(bad, source="params.yaml with the command line's --config/--configfile")
    assert str(caught.value).splitlines() == [
        "params.yaml with the command line's --config/--configfile is invalid (2 problems):",
        "  iterations is not a top-level key; it belongs under profiles.<name>.iterations",
        "  seeds: [] should be non-empty",
    ]


def test_a_wrong_key_on_the_command_line_prints_one_line_not_the_schema(repo):
    result = run(["snakemake", "-n", "--config", "iterations=4"], repo, timeout=300)
    assert result.returncode != 0
    printed = (result.stdout + result.stderr).rstrip().splitlines()
    assert printed[-1] == ("params.yaml with the command line's --config/--configfile is invalid: iterations is not "
                           "a top-level key; it belongs under profiles.<name>.iterations")
    assert len(printed) <= 4, printed  # Snakemake's own two lines (workflow profile, config extended) and ours
    assert all("$schema" not in line and "additionalProperties" not in line for line in printed)


# 8. Estimates for networks without a recorded speed.


def test_networks_without_a_speed_are_estimated_by_macs(params):
    speeds = {"attention56": 100.0}
    paper = build_plan(params, "paper", speeds)
    a452 = next(row for row in paper["rows"] if row["network"] == "attention452")
    assert a452["estimated_from"] == "attention56"
    assert a452["images_per_s"] == pytest.approx(100.0 * 136_333_824 / 1_244_252_672)
    assert paper["complete"] and paper["estimated"] == sum(r["network"] != "attention56" for r in paper["rows"])
    text = plan_text(paper, gpu=False, source="records")
    assert "no speed known" not in text and "(estimated from attention56 by MACs)" in text
    assert f"{paper['estimated']} of 29 run(s) estimated by MACs" in text
    # The nearest measured network in MACs is the base: ResNet-164 (248 M) for Attention-92 (239 M).
    rows = build_plan(params, "paper", {"attention56": 100.0, "resnet164": 50.0})["rows"]
    assert next(row for row in rows if row["network"] == "attention92")["estimated_from"] == "resnet164"


def test_build_time_of_the_records_is_counted(params):
    records = [record("attention56", 100.0, total=130.0, train=100.0),
               record("attention56", 100.0, device="NVIDIA H100 (tensorflow)", total=900.0, train=100.0)]
    assert recorded_overheads(records, gpu=False) == {"attention56": 30.0}
    cpu = build_plan(params, "cpu", recorded_speeds(records, gpu=False), recorded_overheads(records, gpu=False))
    assert [row["seconds"] for row in cpu["rows"]] == [1400 * 64 / 100.0 + 30.0] * 2
    assert "model builds included" in plan_text(cpu, gpu=False, source="records")
    smoke = build_plan(params, "smoke", {"attention56": 100.0}, {"attention56": 30.0})
    assert smoke["known_seconds"] > 29 * 30.0 - 1  # 2 iterations a run: the builds are nearly all of it
    assert smoke["known_seconds"] < DAY_S


def test_the_macs_table_covers_every_network_and_matches_a_built_one(root):
    schema = yaml.safe_load((root / "workflow/schemas/params.schema.yaml").read_text())
    networks = schema["properties"]["runs"]["additionalProperties"]["properties"]["network"]["enum"]
    assert set(FORWARD_MACS) == set(networks)
    from ran.models import build_network, forward_macs

    assert forward_macs(build_network("attention56", 10)) == FORWARD_MACS["attention56"] == 136_333_824
