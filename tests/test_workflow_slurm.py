"""Jobs of the smoke profile through a real (single-node, loopback) SLURM with the project's `slurm` profile.

The cluster has no accounting database, so job states come from `squeue` (`--slurm-status-command squeue`); the
profile's partitions and sizes are overridden for the test node from the command line, as docs/workflow.md tells.
"""

import json

import pytest

import workflow_dag as dag
from slurm_cluster import PARTITION, LoopbackCluster, Unavailable
from test_workflow_e2e import run

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

TARGET = "data/smoke/prepared/cifar10"  # download (of a synthetic archive) -> prepare: two CPU jobs


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    cluster = LoopbackCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except Unavailable as reason:
        pytest.skip(f"SLURM cannot be started here: {reason}")
    yield cluster
    cluster.stop()


def test_smoke_jobs_run_as_slurm_jobs(slurm, root, tmp_path):
    repo = dag.copy_repo(root, tmp_path)
    result = run([
        "snakemake", "--workflow-profile", "slurm", "--config", "profile=smoke", "--jobs", "3",
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2", "--slurm-no-account",
        "--slurm-keep-successful-logs",
        "--default-resources", f"slurm_partition={PARTITION}", "runtime=10", "mem_mb=500", "cpus_per_task=1",
        "--", TARGET,
    ], repo)
    output = result.stdout + result.stderr
    assert "2 of 2 steps (100%) done" in output, output
    manifest = json.loads((repo / TARGET / "manifest.json").read_text())
    assert manifest["dataset"] == "cifar10"
    assert output.count("has been submitted with SLURM jobid") == 2, output
    for rule in ("download", "prepare"):
        logs = list((repo / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob("*.log"))
        assert logs, f"no SLURM log for rule {rule}"
