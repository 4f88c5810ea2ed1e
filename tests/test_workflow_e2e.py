"""The whole smoke DAG, every configuration, through each engine in its own copy of the repository, offline.

Snakemake: `snakemake --cores 2 --config profile=smoke` over every configuration, then its own HTML report, then
`dvc commit --force` + `snakemake --touch` hand the outputs to DVC without either engine rerunning anything. DVC:
`dvc repro` with `profile: smoke` selecting three runs (both datasets, label noise, a ResNet; the other runs write
their "not selected" markers), then `snakemake --touch` adopts those outputs. Wall times are printed (`pytest -s`)
and written to results/smoke/logs/e2e-*.txt in the copy.
"""

import fcntl
import json
import os
import re
import subprocess
import time

import pytest

import workflow_dag as dag
from test_workflow import select_smoke_runs, set_profile

pytestmark = pytest.mark.e2e

UP_TO_DATE = "Data and pipelines are up to date."
SUBSET = ["c10_a56_arl_mixed", "c10_r164_noise10", "c100_a56_nal_mixed"]  # what the DVC run trains


FAKE_GPUS = 2  # the Snakemake run: two fake GPUs, so two train/evaluate jobs at once, each on a slot of its own


def offline_env(repo):
    """The copy's own code and every network request refused (a proxy on a closed port). In the Snakemake copy the
    machine has two fake GPUs (jobs take GPU slots; no device really exists), in the DVC copy none."""
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(PYTHONPATH=str(repo / "src"), DVC_NO_ANALYTICS="1", http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               no_proxy="", NO_PROXY="", RAN_GPU_SLOTS=str(repo / ".gpu-slots"))
    if (repo / ".fake-gpus").exists():
        env.update(RAN_FAKE_GPUS=str(FAKE_GPUS), TF_CPP_MIN_LOG_LEVEL="3")
    else:
        env.update(CUDA_VISIBLE_DEVICES="")
    return env


def _readable(text: str) -> str:
    """The end of an engine's output without TensorFlow's C++ log lines, which bury the job's own error."""
    lines = [line for line in text.splitlines() if not re.match(r"^\S*[IWE]\d{4} \d\d:\d\d:\d\d", line)]
    return "\n".join(lines)[-6000:]


def run(args, repo, check=True):
    result = subprocess.run(args, cwd=repo, env=offline_env(repo), capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{_readable(result.stdout)}\n"
                    f"{_readable(result.stderr)}")
    return result


def timed(args, repo, label):
    start = time.perf_counter()
    run(args, repo)
    seconds = time.perf_counter() - start
    note = f"{label}: {' '.join(args)}: {seconds:.1f} s"
    print(note)
    (repo / "results" / "smoke" / "logs").mkdir(parents=True, exist_ok=True)
    (repo / "results" / "smoke" / "logs" / f"e2e-{label}.txt").write_text(note + "\n")
    return seconds


def check_outputs(repo, runs):
    report = repo / "results" / "smoke" / "report" / "report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    for run_id in runs:
        metrics = json.loads((repo / "results" / "smoke" / "eval" / run_id / "metrics.json").read_text())
        assert metrics["run"] == run_id and metrics["profile"] == "smoke"
        assert (repo / "results" / "smoke" / "models" / run_id / "seed0" / "model.keras").is_file()
    for folder in ("tables", "figures"):
        assert any((repo / "results" / "smoke" / folder).iterdir()), folder
    assert not (repo / "results" / "paper").exists() and not (repo / "data" / "paper").exists()


@pytest.fixture(scope="module")
def snakemake_repo(root, tmp_path_factory):
    repo = dag.copy_repo(root, tmp_path_factory.mktemp("e2e-snakemake"))
    (repo / ".fake-gpus").touch()
    timed(["snakemake", "--cores", "2", "--resources", f"gpu={FAKE_GPUS}", "--config", "profile=smoke"], repo,
          "snakemake")
    return repo


@pytest.fixture(scope="module")
def dvc_repo(root, tmp_path_factory):
    repo = dag.copy_repo(root, tmp_path_factory.mktemp("e2e-dvc"))
    set_profile(repo, "smoke")
    select_smoke_runs(repo, SUBSET)
    subprocess.run(["git", "commit", "-qam", "smoke selects three runs"], cwd=repo, check=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"})
    timed(["dvc", "repro"], repo, "dvc")
    return repo


def test_snakemake_runs_the_whole_smoke_dag(snakemake_repo, params):
    check_outputs(snakemake_repo, params["runs"])
    logs = [path.read_text() for path in (snakemake_repo / "results" / "smoke" / "logs" / "models").glob("*/*.log")]
    used = {log.split("this job runs on GPU ")[1][0] for log in logs if "this job runs on GPU " in log}
    assert used == {"0", "1"}, "the two fake GPUs should both have been used"
    for lock in (snakemake_repo / ".gpu-slots").glob("*.lock"):  # every slot is free again
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert "Nothing to be done" in run(["snakemake", "-n", "--config", "profile=smoke"], snakemake_repo).stdout
    benchmarks = snakemake_repo / "results" / "smoke" / "benchmarks" / "models"
    assert sorted(p.parent.name for p in benchmarks.glob("*/seed0.tsv")) == sorted(params["runs"])


def test_adding_a_seed_keeps_every_finished_seed(snakemake_repo, params):
    """`seeds: [0]` -> `[0, 1]`: Snakemake plans seed 1's noise and train jobs and what reads them, never a job of
    seed 0, so no finished seed folder is deleted (a job's outputs are removed only when the job runs)."""
    path = snakemake_repo / "params.yaml"
    original = path.read_text()
    text, count = re.subn(r"(?m)^seeds: \[0\]$", "seeds: [0, 1]", original)
    assert count == 1, "params.yaml no longer reads `seeds: [0]`"
    path.write_text(text)
    try:
        dry = run(["snakemake", "-n", "--config", "profile=smoke"], snakemake_repo).stdout
    finally:
        path.write_text(original)
    outputs = re.findall(r"^    output: (.*)$", dry, flags=re.MULTILINE)
    assert not [out for out in outputs if re.search(r"/seed0\b", out)], "a seed-0 job would rerun:\n" + dry
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry, flags=re.MULTILINE))
    assert int(jobs.get("train", 0)) == len(params["runs"]) and int(jobs.get("noise", 0)) == 1, dry
    assert {f"results/smoke/models/{run_id}/seed1" for run_id in params["runs"]} <= set(outputs)


def test_snakemake_writes_its_own_report(snakemake_repo):
    out = snakemake_repo / "results" / "smoke" / "snakemake-report.html"
    run(["snakemake", "--config", "profile=smoke", "--report", str(out)], snakemake_repo)
    text = out.read_text()
    assert "table" in text.lower() and len(text) > 100_000
    assert "report.html" in text, "the project's own report belongs in the Snakemake report"


def test_dvc_commit_adopts_the_snakemake_outputs_and_neither_engine_reruns(snakemake_repo):
    """The documented hand-over: `dvc commit --force` caches the outputs (their times change), then
    `snakemake --touch` brings Snakemake's view up to date again; afterwards neither engine has anything to do."""
    set_profile(snakemake_repo, "smoke")
    run(["dvc", "commit", "--force"], snakemake_repo)
    run(["snakemake", "--touch", "--cores", "1", "--config", "profile=smoke"], snakemake_repo)
    status = run(["dvc", "status"], snakemake_repo).stdout
    assert UP_TO_DATE in status, status
    dry = run(["dvc", "repro", "--dry"], snakemake_repo).stdout
    assert "Running stage" not in dry, dry
    smk = run(["snakemake", "-n", "--config", "profile=smoke"], snakemake_repo)
    assert "Nothing to be done" in smk.stdout, smk.stdout + smk.stderr


def test_dvc_repro_runs_the_smoke_dag_for_the_selected_runs(dvc_repo, params):
    check_outputs(dvc_repo, SUBSET)
    assert UP_TO_DATE in run(["dvc", "status"], dvc_repo).stdout
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], dvc_repo).stdout)
    files = {path for workspace in metrics.values() for path in workspace.get("data", {})}
    assert {f"results/smoke/eval/{r}/score.json" for r in params["runs"]} <= files
    table = run(["dvc", "metrics", "show", "--precision", "2"], dvc_repo).stdout.splitlines()
    assert len(table) == 1 + len(params["runs"]) and max(map(len, table)) <= 120, "\n".join(table)
    for run_id in set(params["runs"]) - set(SUBSET):
        metrics = json.loads((dvc_repo / "results" / "smoke" / "eval" / run_id / "metrics.json").read_text())
        assert metrics["status"] == "not selected", run_id
        assert not (dvc_repo / "results" / "smoke" / "models" / run_id / "seed0").exists()
    tables = (dvc_repo / "results" / "smoke" / "tables" / "params.md").read_text()
    assert tables.count("not run") >= 2 * (len(params["runs"]) - len(SUBSET))


def test_snakemake_touch_adopts_the_dvc_outputs_and_neither_engine_reruns(dvc_repo):
    run(["snakemake", "--touch", "--cores", "1", "--config", "profile=smoke"], dvc_repo)
    dry = run(["snakemake", "-n", "--config", "profile=smoke"], dvc_repo)
    assert "Nothing to be done" in dry.stdout, dry.stdout + dry.stderr
    assert UP_TO_DATE in run(["dvc", "status"], dvc_repo).stdout


def test_a_model_edit_reruns_train_and_evaluate_under_both_engines(snakemake_repo):
    """After the hand-over both engines are up to date; a one-line edit of the mask's module then makes each of them
    rerun every train and evaluate job (and what follows), nothing upstream of them."""
    set_profile(snakemake_repo, "smoke")  # the hand-over again (idempotent), so the test also stands alone
    run(["dvc", "commit", "--force"], snakemake_repo)
    run(["snakemake", "--touch", "--cores", "1", "--config", "profile=smoke"], snakemake_repo)
    module = snakemake_repo / "src" / "ran" / "models" / "mask.py"
    original = module.read_text()
    module.write_text(original + "# an edit\n")
    try:
        dry = run(["snakemake", "-n", "--config", "profile=smoke"], snakemake_repo).stdout
        jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry, flags=re.MULTILINE))
        runs = len(json.loads(run(["ran", "runs", "--json"], snakemake_repo).stdout)["runs"])
        assert int(jobs.get("train", 0)) == runs and int(jobs.get("evaluate", 0)) == runs, dry
        assert "prepare" not in jobs and "download" not in jobs, dry
        status = run(["dvc", "status"], snakemake_repo).stdout
        assert "train@c10_a56_arl_mixed:" in status and re.search(r"modified:\s+src/ran/models", status), status
        assert "prepare@cifar10:" not in status, status
    finally:
        module.write_text(original)
