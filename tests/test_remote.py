"""DVC remotes end to end: store a trained smoke run, rebuild it on a fresh clone without training.

One copy of the repository reproduces the smoke profile with one selected run (`dvc repro`), commits `dvc.lock`
and the outputs DVC does not cache (they travel by git, not by `dvc push`), and pushes its cache and run-cache
(`dvc push --run-cache`) to two remotes: an S3 bucket on a loopback S3 server (tests/s3_server.py; its URL and
endpoint committed in .dvc/config, the credentials from the environment) and a plain folder, as a cluster's shared
filesystem would be. Fresh `git clone`s of that copy then `dvc pull` (the S3 one with its credentials in
.dvc/config.local, `dvc remote modify --local`): `RAN_NO_TRAINING=1 dvc repro` has nothing to run, and the tables
rendered again from the pulled results equal the original's. A clone that pulls nothing fails in `ran train` with
one line naming the run. No credential may reach what the project writes. Step times are printed (`pytest -s`).
"""

from __future__ import annotations

import filecmp
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import workflow_dag as dag
from s3_server import ACCESS_KEY, SECRET_KEY, s3_store  # noqa: F401 - s3_store: the session fixture
from test_workflow import select_smoke_runs, set_profile
from test_workflow_e2e import UP_TO_DATE, _readable, offline_env

pytestmark = pytest.mark.e2e

RUN = "c10_a56_arl_mixed"  # the one run trained: the smallest selection that has a model to store
PREFIX = "ran/dvc"  # the remote's folder in the bucket
GIT = ["git", "-c", "user.name=tests", "-c", "user.email=tests@localhost", "-c", "commit.gpgsign=false"]
NO_FILE = "/nonexistent/ran-tests/aws"  # AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE: none to read
AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


def remote_env(repo: Path, **extra: str) -> dict[str, str]:
    """The e2e tests' offline environment, loopback let through the refusing proxy (the S3 server), and no AWS
    credential but the ones given: neither the machine's ~/.aws nor its environment."""
    env = {k: v for k, v in offline_env(repo).items() if k not in AWS_KEYS}
    env.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost", AWS_CONFIG_FILE=NO_FILE,
               AWS_SHARED_CREDENTIALS_FILE=NO_FILE, AWS_EC2_METADATA_DISABLED="true", **extra)
    return env


def sh(args: list[str], repo: Path, env: dict[str, str], check: bool = True, label: str | None = None):
    start = time.perf_counter()
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    seconds = time.perf_counter() - start
    if label:
        print(f"{label}: {' '.join(args)}: {seconds:.1f} s")
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{_readable(result.stdout)}\n"
                    f"{_readable(result.stderr)}")
    return result


def stages_run(output: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", output, flags=re.MULTILINE)


def uncached_outputs(repo: Path) -> list[str]:
    """The stage outputs DVC does not cache, which `dvc push` would not carry (none: dvc.yaml caches every one)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return sorted(out.def_path for stage in dvc.index.stages for out in stage.outs if not out.use_cache)


def commit(repo: Path, message: str, *paths: str, force: bool = False) -> None:
    subprocess.run([*GIT, "add", *(["-f"] if force else []), "--", *paths], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", message], cwd=repo, check=True)


@dataclass
class Trained:
    repo: Path
    env: dict[str, str] = field(repr=False)  # the shell that trained and pushed: S3 credentials exported
    metrics: list[str]  # the run's evaluation, which a clone must get from the remote like its model


@pytest.fixture(scope="module")
def trained(root, tmp_path_factory):
    """A copy that ran the smoke profile for RUN; everything needed to rebuild it committed."""
    repo = dag.copy_repo(root, tmp_path_factory.mktemp("remote-trained"))
    set_profile(repo, "smoke")
    select_smoke_runs(repo, [RUN])
    commit(repo, f"smoke selects {RUN}", "params.yaml")
    env = remote_env(repo, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    sh(["dvc", "repro"], repo, env, label="train")
    assert uncached_outputs(repo) == [], "an uncached output would not reach the remote"
    commit(repo, "dvc.lock", "dvc.lock")
    return Trained(repo, env, [f"results/smoke/eval/{RUN}/{name}" for name in ("metrics.json", "score.json")])


@pytest.fixture(scope="module")
def pushed_s3(s3_store, trained, tmp_path_factory):  # noqa: F811 - imported; first, so a skip trains nothing
    """The S3 remote committed as the default (URL and endpoint, no credential), pushed with its run-cache; the
    credentials from the environment, then from a credentials file."""
    repo, env = trained.repo, trained.env
    sh(["dvc", "remote", "add", "-d", "store", f"s3://{s3_store.bucket}/{PREFIX}"], repo, env)
    sh(["dvc", "remote", "modify", "store", "endpointurl", s3_store.endpoint], repo, env)
    commit(repo, "the S3 remote", ".dvc/config")
    push = sh(["dvc", "push", "--run-cache"], repo, env, label="push s3")
    assert re.search(r"\d+ files? pushed", push.stdout), push.stdout
    cloud = sh(["dvc", "status", "--cloud"], repo, env).stdout
    assert "in sync" in cloud, cloud
    # The same remote with the credentials in a shared credentials file instead (~/.aws/credentials by default).
    credentials = tmp_path_factory.mktemp("aws") / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    from_file = {k: v for k, v in env.items() if k not in AWS_KEYS} | {"AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    cloud = sh(["dvc", "status", "--cloud"], repo, from_file, label="status s3, credentials file").stdout
    assert "in sync" in cloud, cloud
    return s3_store


@pytest.fixture(scope="module")
def pushed_folder(trained, tmp_path_factory):
    """A plain folder as the remote (a cluster's shared filesystem), set for this machine only, pushed too."""
    folder = tmp_path_factory.mktemp("shared-remote") / "dvc"
    repo, env = trained.repo, trained.env
    sh(["dvc", "remote", "add", "--local", "shared", str(folder)], repo, env)
    sh(["dvc", "push", "-r", "shared", "--run-cache"], repo, env, label="push folder")
    assert any((folder / "files").rglob("*")) and any((folder / "runs").rglob("*"))
    return folder


def fresh_clone(trained: Trained, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(trained.repo), str(dest)], check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def s3_clone(pushed_s3, trained, tmp_path_factory):
    """A clone with the S3 remote from git and the credentials in .dvc/config.local; pulled with the run-cache.
    SeaweedFS checks signatures, so there a fetch with a wrong secret key is refused first."""
    clone = fresh_clone(trained, tmp_path_factory.mktemp("clone-s3") / "repo")
    env = remote_env(clone)
    if pushed_s3.kind == "seaweedfs":
        wrong = {**env, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
        refused = sh(["dvc", "fetch"], clone, wrong, check=False, label="fetch s3, wrong secret")
        assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stdout + refused.stderr
    sh(["dvc", "remote", "modify", "--local", "store", "access_key_id", pushed_s3.access_key], clone, env)
    sh(["dvc", "remote", "modify", "--local", "store", "secret_access_key", pushed_s3.secret_key], clone, env)
    sh(["dvc", "pull", "--run-cache"], clone, env, label="pull s3")
    return clone


@pytest.fixture(scope="module")
def folder_clone(trained, pushed_folder, tmp_path_factory):
    """A clone that adds the shared folder as its default remote in .dvc/config and pulls (not the run-cache)."""
    clone = fresh_clone(trained, tmp_path_factory.mktemp("clone-folder") / "repo")
    env = remote_env(clone)
    sh(["dvc", "remote", "add", "-d", "shared", str(pushed_folder)], clone, env)
    sh(["dvc", "pull"], clone, env, label="pull folder")
    return clone


def check_rebuild_without_training(trained: Trained, clone: Path, label: str) -> None:
    """After the pull nothing is left to do, and `RAN_NO_TRAINING=1 dvc repro` runs no stage; forced to render the
    tables again from the pulled results (`--force --single-item tables`), it writes the original's tables."""
    env, rebuild = remote_env(clone), {**remote_env(clone), "RAN_NO_TRAINING": "1"}
    for path in [f"results/smoke/models/{RUN}/seed0/model.keras", *trained.metrics]:
        assert (clone / path).is_file(), f"{path} missing after the pull"
    status = sh(["dvc", "status"], clone, env, label=f"status {label}").stdout
    assert UP_TO_DATE in status, status
    result = sh(["dvc", "repro"], clone, rebuild, label=f"rebuild {label}")
    assert not stages_run(result.stdout + result.stderr), result.stdout + result.stderr
    tables = clone / "results" / "smoke" / "tables"
    result = sh(["dvc", "repro", "--force", "--single-item", "tables"], clone, rebuild, label=f"render {label}")
    assert stages_run(result.stdout + result.stderr) == ["tables"], result.stdout + result.stderr
    original = trained.repo / "results" / "smoke" / "tables"
    names = sorted(p.name for p in original.iterdir())
    assert names and names == sorted(p.name for p in tables.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(original, tables, names, shallow=False)
    assert not mismatch and not errors, f"tables differ from the original's: {mismatch + errors}"
    assert UP_TO_DATE in sh(["dvc", "status"], clone, env).stdout  # so the report, after them, is up to date too
    # The hand-over to Snakemake after a pull, as after a DVC run: its times brought up to date, nothing to run.
    sh(["snakemake", "--touch", "--cores", "1"], clone, rebuild, label=f"snakemake touch {label}")
    dry = sh(["snakemake", "-n"], clone, rebuild)
    assert "Nothing to be done" in dry.stdout, dry.stdout + dry.stderr


def test_an_s3_clone_rebuilds_without_training(pushed_s3, s3_clone, trained):
    """S3 (SeaweedFS, or moto where it cannot start): objects and run-cache pushed, both pulled."""
    keys = pushed_s3.keys(PREFIX + "/")
    assert any(k.startswith(f"{PREFIX}/files/md5/") for k in keys), keys[:10]
    runs = sorted(k.removeprefix(f"{PREFIX}/runs/") for k in keys if k.startswith(f"{PREFIX}/runs/"))
    assert runs, "no run-cache entry was pushed"
    pulled = s3_clone / ".dvc" / "cache" / "runs"
    assert sorted(str(p.relative_to(pulled)) for p in pulled.rglob("*") if p.is_file()) == runs
    check_rebuild_without_training(trained, s3_clone, "s3")


def test_a_shared_folder_clone_rebuilds_without_training(trained, folder_clone):
    """A folder remote, as a cluster's shared filesystem: `dvc pull` alone is enough to rebuild."""
    check_rebuild_without_training(trained, folder_clone, "folder")


def test_a_clone_without_models_refuses_to_train(trained, tmp_path_factory):
    """Nothing pulled: the data stages rebuild (synthetic), then the selected run's train stage stops the repro
    with `ran train`'s one line naming the run."""
    clone = fresh_clone(trained, tmp_path_factory.mktemp("clone-empty") / "repo")
    result = sh(["dvc", "repro"], clone, {**remote_env(clone), "RAN_NO_TRAINING": "1"}, check=False,
                label="refuse")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    lines = [line for line in output.splitlines() if line.startswith("ran train:")]
    assert len(lines) == 1, _readable(output)
    assert lines[0].startswith(f"ran train: {RUN} seed 0 has no trained model in results/smoke/models/{RUN}/seed0 "
                               f"and RAN_NO_TRAINING is set"), lines[0]
    assert "dvc pull" in lines[0]
    assert not (clone / "results" / "smoke" / "models" / RUN / "seed0" / "model.keras").exists()


def _files(repo: Path, *extra: str) -> list[Path]:
    """What the project and DVC write in a copy (DVC's state beside the machine's other repositories included),
    and the files that record a run."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        site_cache = Path(dvc.site_cache_dir)
    found = [repo / name for name in ("dvc.lock", "params.yaml", ".dvc/config", *extra)]
    for folder in (repo / "results", repo / "data", repo / ".dvc" / "tmp", repo / "workflow/resources/records",
                   site_cache):
        found += [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return [p for p in found if p.is_file()]


def test_no_credential_reaches_a_log_or_a_record(pushed_s3, s3_clone, trained, pushed_folder):
    """The secret key was exported while the copy trained and pushed, and written with `--local` in the clone:
    it is nowhere but in the clone's .dvc/config.local (git-ignored), nor in either git history or the folder
    remote."""
    secret = SECRET_KEY.encode()
    assert pushed_s3.secret_key == SECRET_KEY
    files = (_files(trained.repo, ".dvc/config.local") + _files(s3_clone)
             + [p for p in pushed_folder.rglob("*") if p.is_file()])
    assert len(files) > 100
    leaks = [str(p) for p in files if secret in p.read_bytes()]
    assert not leaks, f"the secret key is in {leaks}"
    for repo in (trained.repo, s3_clone):
        history = subprocess.run(["git", "log", "--all", "-p", "--format=%B"], cwd=repo, capture_output=True,
                                 check=True).stdout
        assert secret not in history
    local = s3_clone / ".dvc" / "config.local"
    assert secret in local.read_bytes(), "the clone's credentials were meant to be in .dvc/config.local"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(local)], cwd=s3_clone)
    assert ignored.returncode == 0, ".dvc/config.local is not git-ignored"
