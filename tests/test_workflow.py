"""The DAG itself, without running a job: lint, dry runs, profiles, validation, speed, and Snakemake/DVC parity.

Every test works on a copy of the repository (the files git knows), so local data, results or dvc.lock never change
what a dry run lists.
"""

import re
import shutil
import subprocess
import time

import pytest
import yaml

import workflow_dag as dag

NEW_RUN = "c10_a56_nal_channel_extra"


def run(args, cwd, **kwargs):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, **kwargs)


def set_profile(repo, profile):
    """Point params.yaml's `profile` at `profile`, keeping its comments (what a user does before `dvc repro`)."""
    path = repo / "params.yaml"
    text, count = re.subn(r"(?m)^profile: \S+$", f"profile: {profile}", path.read_text())
    assert count == 1, "params.yaml has no top-level `profile:` line"
    path.write_text(text)


def select_smoke_runs(repo, runs):
    """Make the smoke profile of `repo`'s params.yaml select `runs` only (the cheapest end-to-end selection)."""
    path = repo / "params.yaml"
    text, count = re.subn(r"(?m)^(  smoke:.*\n    data: synthetic\n    runs: )all$", rf"\g<1>[{', '.join(runs)}]",
                          path.read_text())
    assert count == 1, "params.yaml's smoke profile no longer reads `data: synthetic` then `runs: all`"
    path.write_text(text)


@pytest.fixture(scope="session")
def repo(root, tmp_path_factory):
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs git and a git checkout of the project")
    return dag.copy_repo(root, tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="session")
def smoke_repo(root, tmp_path_factory):
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs git and a git checkout of the project")
    copy = dag.copy_repo(root, tmp_path_factory.mktemp("smoke-repo"))
    set_profile(copy, "smoke")
    return copy


@pytest.fixture(scope="session")
def paper_jobs(repo):
    return dag.snakemake_jobs(repo)


def test_matrix_has_29_configurations(params):
    assert len(params["runs"]) == 29


def test_snakemake_lint_is_clean(repo):
    result = run(["snakemake", "--lint"], repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


@pytest.mark.parametrize("profile", ["paper", "smoke"])
def test_dry_run_lists_every_configuration(repo, params, profile):
    jobs = dag.snakemake_jobs(repo, "--config", f"profile={profile}")
    for step in ("train", "evaluate"):
        assert {name.split("@")[1] for name in jobs if name.startswith(f"{step}@")} == set(params["runs"])
    datasets = set(params["datasets"])
    for step in ("download", "prepare"):
        assert {name.split("@")[1] for name in jobs if name.startswith(f"{step}@")} == datasets
    assert {"noise", "tables", "figures", "report"} <= jobs.keys()
    assert len(jobs) == 2 * len(params["runs"]) + 2 * len(datasets) + 4
    for job in jobs.values():
        assert all(path.startswith((f"data/{profile}/", f"results/{profile}/")) for path in job.outs), job
        assert job.log.startswith(f"results/{profile}/logs/"), job
        if " --profile " in job.cmd:
            assert f" --profile {profile} " in job.cmd, job.cmd
    assert jobs["report"].outs == {f"results/{profile}/report/report.html"}


def test_every_log_mirrors_its_output(paper_jobs):
    logs = [job.log for job in paper_jobs.values()]
    assert len(set(logs)) == len(logs), "two jobs share a log file"
    assert paper_jobs["train@c10_r164"].log == "results/paper/logs/models/c10_r164/seed0.log"
    assert paper_jobs["prepare@cifar100"].log == "results/paper/logs/data/prepared/cifar100.log"


def test_gpu_jobs_declare_one_gpu_and_cpu_jobs_none(paper_jobs):
    for name, job in paper_jobs.items():
        gpu = "gpu=1" in job.resources.split(", ")
        assert gpu == name.startswith(("train@", "evaluate@")), (name, job.resources)


def test_train_jobs_write_benchmarks(repo):
    result = run(["snakemake", "-n", "--forceall", "--cores", "1", "results/paper/models/c10_r164/seed0"], repo)
    assert result.returncode == 0, result.stderr
    assert "benchmark: results/paper/benchmarks/models/c10_r164/seed0.tsv" in result.stdout + result.stderr


def test_the_engines_define_the_same_dag(repo, paper_jobs):
    assert dag.compare(paper_jobs, dag.dvc_jobs(repo)) == []


def test_the_engines_define_the_same_dag_for_smoke(smoke_repo):
    smoke = dag.snakemake_jobs(smoke_repo)
    assert all("--profile paper" not in job.cmd for job in smoke.values())
    assert dag.compare(smoke, dag.dvc_jobs(smoke_repo)) == []


def test_the_engines_define_the_same_dag_for_a_run_selecting_profile(repo, tmp_path, params):
    """`profiles.cpu.runs` selects two runs: both engines keep every job (the others write markers in a second)."""
    assert params["profiles"]["cpu"]["runs"] != "all"
    copy = dag.copy_repo(repo, tmp_path)
    set_profile(copy, "cpu")
    jobs = dag.snakemake_jobs(copy)
    assert {name for name in jobs if name.startswith("train@")} == {f"train@{run}" for run in params["runs"]}
    assert dag.compare(jobs, dag.dvc_jobs(copy)) == []


def test_the_engines_define_the_same_dag_with_two_seeds(repo, tmp_path, params):
    """Snakemake trains and draws noise per seed (adding one reruns nothing), DVC per run: the jobs of each seed
    together are DVC's stage, and the cpu profile's left-out runs keep their one train job."""
    copy = dag.copy_repo(repo, tmp_path)
    set_profile(copy, "cpu")
    path = copy / "params.yaml"
    text, count = re.subn(r"(?m)^seeds: \[0\]$", "seeds: [0, 1]", path.read_text())
    assert count == 1
    path.write_text(text)
    result = run(["snakemake", "-n", "--forceall", "--cores", "1"], copy)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    selected = len(params["profiles"]["cpu"]["runs"])
    assert (int(counts["train"]), int(counts["noise"])) == (2 * selected, 2), result.stdout
    assert int(counts["train_not_selected"]) == len(params["runs"]) - selected
    assert dag.compare(dag.snakemake_jobs(copy), dag.dvc_jobs(copy)) == []


def test_seed_jobs_that_differ_in_more_than_the_seed_are_caught():
    job = dag.Job("train@r", "ran train --out m/r --seeds 0", frozenset(), frozenset({"m/r/seed0"}))
    assert dag.as_stage(job, "0").outs == {"m/r"} and dag.as_stage(job, "0").cmd == "ran train --out m/r"
    other = dag.Job("train@r", "ran train --out m/x --seeds 1", frozenset(), frozenset({"m/r/seed1"}))
    with pytest.raises(ValueError, match="seeds differ"):
        dag.merge_seed_job(dag.as_stage(job, "0"), dag.as_stage(other, "1"))
    with pytest.raises(ValueError, match="expected a command ending in ' --seeds 2'"):
        dag.as_stage(job, "2")


def test_derived_edges_are_dvcs_own_graph(repo):
    assert dag.edges(dag.dvc_jobs(repo)) == dag.dvc_native_edges(repo)


def test_edges_follow_the_paths_of_the_contract(paper_jobs):
    edges = dag.edges(paper_jobs)
    assert edges["train@c100_r164"] == {"prepare@cifar100", "noise"}
    assert edges["evaluate@c100_r164"] == {"train@c100_r164", "prepare@cifar100"}
    assert edges["noise"] == {"prepare@cifar10"}
    assert edges["report"] == {"tables", "figures"}
    assert {n for n in edges["figures"] if n.startswith("train@")} == {n for n in paper_jobs if n.startswith("train@")}


def test_a_run_added_to_params_appears_in_both_engines(root, tmp_path):
    copy = dag.copy_repo(root, tmp_path)
    params = copy / "params.yaml"
    params.write_text(params.read_text().rstrip("\n") + "\n  " + NEW_RUN
                      + ": {dataset: cifar10, network: attention56, attention: channel, learning: NAL}\n")
    smk, dvc = dag.snakemake_jobs(copy), dag.dvc_jobs(copy)
    for step in ("train", "evaluate"):
        assert f"{step}@{NEW_RUN}" in smk and f"{step}@{NEW_RUN}" in dvc
    assert f"evaluate@{NEW_RUN}" in dag.edges(dvc)["tables"]
    assert dag.compare(smk, dvc) == []


def test_comparison_fails_when_dvc_loses_a_dependency(repo, paper_jobs, tmp_path):
    copy = dag.copy_repo(repo, tmp_path)
    dvc_yaml = copy / "dvc.yaml"
    text = dvc_yaml.read_text()
    # train stages no longer depend on the noisy labels
    mutated = text.replace("        - data/${profile}/noisy/${label_noise.dataset}\n", "", 1)
    assert mutated != text
    dvc_yaml.write_text(mutated)
    problems = dag.compare(paper_jobs, dag.dvc_jobs(copy))
    assert len(problems) == len(yaml.safe_load((repo / "params.yaml").read_text())["runs"])
    assert all(p.startswith("train@") and "upstream jobs differ: only snakemake ['noise']" in p for p in problems)


def test_comparison_fails_on_a_changed_command_or_output(paper_jobs):
    job = paper_jobs["tables"]
    changed = {**paper_jobs, "tables": dag.Job("tables", job.cmd + " --extra", job.deps, job.outs, job.code)}
    assert dag.compare(paper_jobs, changed) == [f"tables: commands differ\n  snakemake: {job.cmd}\n"
                                                f"  dvc:       {job.cmd} --extra"]
    moved = {**paper_jobs, "tables": dag.Job("tables", job.cmd, job.deps, frozenset({"results/tables"}), job.code)}
    problems = dag.compare(paper_jobs, moved)
    assert any(p.startswith("tables: outputs differ") for p in problems)
    assert any(p.startswith("report: upstream jobs differ") for p in problems)
    missing = {k: v for k, v in paper_jobs.items() if k != "noise"}
    assert "only in Snakemake: noise" in dag.compare(paper_jobs, missing)
    uncoded = {**paper_jobs, "tables": dag.Job("tables", job.cmd, job.deps, job.outs, job.code - {job_code(job)})}
    assert dag.compare(paper_jobs, uncoded) == [
        f"tables: code differs: only snakemake [{job_code(job)!r}], only dvc []"]


def job_code(job) -> str:
    return sorted(job.code)[0]


def test_every_job_depends_on_the_code_it_imports(paper_jobs):
    """Both engines rerun a job whose code changed: Snakemake lists each module file as an input, as dvc.yaml's
    folders expand (equality is checked by the parity test); a model or config edit reaches train and evaluate."""
    for name, job in paper_jobs.items():
        assert job.code, f"{name} lists no code"
    train = paper_jobs["train@c10_a56_arl_mixed"].code
    assert {"src/ran/config.py", "src/ran/models/mask.py", "src/ran/data/prepare.py", "src/ran/train/loop.py"} <= train
    assert "src/ran/models/mask.py" in paper_jobs["evaluate@c10_a56_arl_mixed"].code


def test_commands_differ_only_by_log_redirection():
    assert dag._command("ran x --a b 2> results/p/logs/x.log") == "ran x --a b"
    assert dag._command("ran x\n  --a b") == "ran x --a b"
    assert dag._command('echo "== attempt $(date -u +%Y) ==" >> l.log; ran x --a b 2>> l.log') == "ran x --a b"


@pytest.mark.parametrize("override, message", [
    ("profile=nonexistent", "profile: 'nonexistent' is not one of"),  # ran.config.validate_params
    ("seeds=[]", "should be non-empty"),  # the JSON schema
    ("profile=x$(touch PWNED)", "does not match"),  # names become words of shell commands: never code
])
def test_invalid_params_stop_the_workflow_before_any_job(repo, override, message):
    result = run(["snakemake", "-n", "--config", override], repo)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Building DAG of jobs" not in result.stdout + result.stderr
    assert not (repo / "PWNED").exists()


def test_a_duplicated_key_stops_snakemake_as_it_stops_dvc(repo, tmp_path):
    copy = dag.copy_repo(repo, tmp_path)
    params = copy / "params.yaml"
    params.write_text(params.read_text() + "training:\n  batch_size: 8\n")
    result = run(["snakemake", "-n"], copy)
    assert result.returncode != 0
    assert "duplicate key 'training' at line" in result.stdout + result.stderr


def test_default_workflow_profile_is_found(repo):
    result = run(["snakemake", "-n"], repo)
    assert result.returncode == 0, result.stderr
    assert "Using workflow specific profile profiles/default" in result.stderr


@pytest.mark.parametrize("profile", ["local-gpu", "slurm"])
def test_other_workflow_profiles_parse(repo, profile):
    result = run(["snakemake", "-n", "--workflow-profile", profile, "--config", "profile=smoke"], repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Using workflow specific profile profiles/{profile}" in result.stderr


def _best_of_two(args, cwd):
    times = []
    for _ in range(2):
        start = time.perf_counter()
        result = run(args, cwd)
        times.append(time.perf_counter() - start)
        assert result.returncode == 0, result.stdout + result.stderr
    return min(times)


def test_snakemake_dry_run_of_the_full_matrix_takes_under_5_s(repo):
    seconds = _best_of_two(["snakemake", "-n", "--forceall"], repo)
    print(f"snakemake -n --forceall (paper, the full matrix): {seconds:.2f} s")
    assert seconds < 5


def test_dvc_status_of_the_full_matrix_takes_under_5_s(repo):
    seconds = _best_of_two(["dvc", "status"], repo)
    print(f"dvc status (paper): {seconds:.2f} s")
    assert seconds < 5


def test_snakefile_does_not_import_tensorflow(repo):
    # Parsing the workflow must stay light: TensorFlow is imported by the jobs, never by the DAG.
    probe = "\n".join([
        "import sys", "from snakemake.cli import main", "try:", "    main(['-n', '--quiet', 'all'])",
        "except SystemExit:", "    pass",
        "print('parsed', 'ran.config' in sys.modules, 'TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)",
    ])
    result = run(["python", "-c", probe], repo)
    assert "parsed True TF False False" in result.stdout, result.stdout + result.stderr


def test_dvc_declares_metrics_cached_and_figures_as_plots(repo, params):
    """score.json (a few numbers a run) is the metric, so `dvc metrics show` fits a terminal; metrics.json, which
    the report reads, is an output beside it; both cached, so that `dvc push` carries them to a remote."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        outs = {out.def_path: out for stage in dvc.index.stages for out in stage.outs}
    metrics = {path for path, out in outs.items() if out.metric}
    assert metrics == {f"results/paper/eval/{run}/score.json" for run in params["runs"]}
    assert {f"results/paper/eval/{run}/metrics.json" for run in params["runs"]} <= set(outs)
    assert {path for path, out in outs.items() if not out.use_cache} == set()
    assert {path for path, out in outs.items() if out.plot} == {"results/paper/figures"}


def test_train_job_logs_keep_earlier_attempts(root):
    """A resumed job appends to its log under a dated line; `2>` would overwrite the interrupted attempt's log."""
    rule = (root / "workflow" / "rules" / "train.smk").read_text().split("rule train_not_selected:")[0]
    assert "2>> {log:q}" in rule and "2> {log" not in rule and "== attempt $(date" in rule


def test_dvc_train_and_evaluate_depend_on_every_module_that_shapes_a_run(root):
    """config.py's run defaults change every attention run's network; ran.data loads what it trains on."""
    import yaml

    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for stage in ("train", "evaluate"):
        deps = set(stages[stage]["do"]["deps"])
        assert {"src/ran/train", "src/ran/models", "src/ran/data", "src/ran/config.py", "src/ran/runtime.py"} <= deps


def test_the_workflow_catalog_file_names_what_it_may(root):
    """`.snakemake-workflow-catalog.yml` has only the catalog's keys, and says a report is supported."""
    catalog = yaml.safe_load((root / ".snakemake-workflow-catalog.yml").read_text())
    assert set(catalog) == {"usage"}
    usage = catalog["usage"]
    assert set(usage) <= {"mandatory-flags", "software-stack-deployment", "report"}
    assert set(usage["mandatory-flags"]) == {"desc", "flags"} and "--cores" in usage["mandatory-flags"]["flags"]
    assert set(usage["software-stack-deployment"]) <= {"conda", "apptainer", "apptainer+conda", "singularity"}
    assert usage["report"] is True
