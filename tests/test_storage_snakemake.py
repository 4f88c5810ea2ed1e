"""The Snakemake DAG with its inputs and outputs in object storage (snakemake-storage-plugin-s3), against a real
S3-compatible server on loopback (tests/s3_server.py), for one run of the smoke matrix.

A copy of the repository whose smoke profile selects one run trains and evaluates it with
`--default-storage-provider s3`: every output the jobs make lands in the bucket under the prefix, none stays in the
copy's results/ or data/, and a second call has nothing to do. Then a second copy with no local output at all, in
the rebuild mode (`RAN_NO_TRAINING=1`), finds everything in the bucket and runs no job. Credentials travel only in
the plugin's environment variables; the last test looks for the secret in everything Snakemake wrote.
"""

import os
import subprocess
from pathlib import Path

import pytest

import workflow_dag as dag
from s3_server import SECRET_KEY, s3_store  # noqa: F401 - s3_store: the session fixture
from test_workflow import select_smoke_runs, set_profile

pytestmark = pytest.mark.e2e

RUN = "c10_a56_arl_mixed"
PREFIX = "snakemake-store"
TARGET = f"results/smoke/eval/{RUN}/metrics.json"


def storage_env(repo: Path, server) -> dict[str, str]:
    """The copy's own code, no proxy, the plugin's settings (SNAKEMAKE_STORAGE_S3_*) and no GPU."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(PYTHONPATH=str(repo / "src"), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
               SNAKEMAKE_STORAGE_S3_ENDPOINT_URL=server.endpoint,
               SNAKEMAKE_STORAGE_S3_ACCESS_KEY=server.access_key, SNAKEMAKE_STORAGE_S3_SECRET_KEY=server.secret_key)
    return env


def snakemake(repo: Path, server, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    args = ["snakemake", "--cores", "2", "--default-storage-provider", "s3",
            "--default-storage-prefix", f"s3://{server.bucket}/{PREFIX}", *extra]
    result = subprocess.run(args, cwd=repo, env={**storage_env(repo, server), **(env or {})}, capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def one_run_copy(root: Path, dest: Path) -> Path:
    repo = dag.copy_repo(root, dest)
    set_profile(repo, "smoke")
    select_smoke_runs(repo, [RUN])
    return repo


@pytest.fixture(scope="module")
def stored(root, tmp_path_factory, s3_store):  # noqa: F811 - the fixture imported above
    repo = one_run_copy(root, tmp_path_factory.mktemp("storage-run"))
    result = snakemake(repo, s3_store, TARGET)
    return repo, result


def test_the_outputs_are_in_the_bucket_and_not_in_the_copy(stored, s3_store):  # noqa: F811
    repo, _ = stored
    keys = set(s3_store.keys(PREFIX + "/"))
    for path in (f"results/smoke/models/{RUN}/seed0/model.keras", f"results/smoke/models/{RUN}/seed0/train.json",
                 TARGET, f"results/smoke/eval/{RUN}/score.json", "data/smoke/prepared/cifar10/train.npz",
                 "data/smoke/archives/cifar10-binary.tar.gz"):
        assert f"{PREFIX}/{path}" in keys, (path, sorted(keys)[:20])
    assert not any(key.startswith(f"{PREFIX}/src/") or key.endswith(".py") for key in keys), "code is local()"
    assert not (repo / TARGET).exists() and not (repo / "results" / "smoke" / "models" / RUN / "seed0").exists()


def test_a_second_call_has_nothing_to_do(stored, s3_store):  # noqa: F811
    repo, _ = stored
    dry = snakemake(repo, s3_store, "-n", TARGET)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


def test_another_machine_rebuilds_from_the_bucket_without_training(root, stored, s3_store, tmp_path):  # noqa: F811
    fresh = one_run_copy(root, tmp_path / "fresh")
    result = snakemake(fresh, s3_store, TARGET, env={"RAN_NO_TRAINING": "1"})
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (fresh / "results" / "smoke" / "models").exists()


def test_the_secret_reaches_no_file_snakemake_wrote(stored):
    repo, result = stored
    assert SECRET_KEY not in result.stdout + result.stderr
    written = [p for folder in (".snakemake", "results", "data") for p in (repo / folder).rglob("*") if p.is_file()]
    assert written, "Snakemake wrote nothing to look in"
    leaks = [str(p) for p in written if SECRET_KEY.encode() in p.read_bytes()]
    assert leaks == []
