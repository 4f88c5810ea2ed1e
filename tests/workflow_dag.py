"""The jobs of the Snakefile and of dvc.yaml in one engine-neutral form, and their comparison.

A job is named like a DVC stage (`train@c10_r164`, `noise`); Snakemake jobs get the same name from their rule and
their run or dataset wildcard. Snakemake's jobs per seed (`train` and `noise`, so that adding a seed reruns nothing)
are merged into DVC's one stage that loops over the seeds: the command without `--seeds S` (equal for every seed),
the outputs' parent folder, the union of inputs; `train_not_selected` is the train job of a run the profile leaves
out. Both engines are asked for their own view of the DAG (Snakemake: a forced dry run with the shell
commands; DVC: the stages of `Repo.index`), and the edges of both are derived the same way from declared paths: a job
depends on every job that writes a path equal to, inside or above one of its inputs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ran.config import code_files

LOG_REDIRECT = re.compile(r"\s*2>>?\s*\S+\s*$")  # Snakemake sends a job's stderr to its log; stdout to the console
ATTEMPT_LINE = re.compile(r"^\s*echo\s+\"== attempt [^\"]*==\"\s*>>\s*\S+;\s*")  # a dated line first in the log
CODE_PREFIXES = ("src/",)  # code deps: DVC lists folders and files, Snakemake the .py files; compared as files


@dataclass(frozen=True)
class Job:
    name: str
    cmd: str
    deps: frozenset[str]
    outs: frozenset[str]
    code: frozenset[str] = frozenset()  # the .py files the job depends on
    log: str = field(default="", compare=False)  # Snakemake only: DVC prints to the terminal
    resources: str = field(default="", compare=False)  # Snakemake only


def _command(text: str) -> str:
    """The command without log redirection (and the train rule's dated attempt line), whitespace normalised
    (DVC's folded YAML joins lines with spaces)."""
    return " ".join(LOG_REDIRECT.sub("", ATTEMPT_LINE.sub("", text)).split())


def copy_repo(root: Path, dest: Path) -> Path:
    """Copy the files git knows (tracked, or new and not ignored) of `root` into `dest`, committed to a new repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = root / name
        if not (source.exists() or source.is_symlink()):
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    # A clone has commits: DVC and DVCLive read the current revision, which an empty repository lacks.
    git = ["git", "-c", "user.name=tests", "-c", "user.email=tests@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy of the repository under test"], cwd=dest, check=True)
    return dest


def snakemake_jobs(workdir: Path, *extra: str) -> dict[str, Job]:
    """Every job of a forced dry run (`snakemake -n --forceall -p`), except the `all` target."""
    result = subprocess.run(
        ["snakemake", "-n", "--forceall", "-p", "--cores", "1", *extra],
        cwd=workdir, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"snakemake dry run failed:\n{result.stdout}\n{result.stderr}")
    return parse_dry_run(result.stdout + "\n" + result.stderr)


def parse_dry_run(text: str) -> dict[str, Job]:
    jobs, block = {}, None
    for line in text.splitlines():
        rule = re.match(r"^(?:local)?rule (\w+):$", line)
        if rule:
            block = {"rule": rule.group(1), "input": "", "output": "", "wildcards": "", "log": "", "resources": ""}
            continue
        if block is None:
            continue
        entry = re.match(r"^\s+(input|output|wildcards|log|resources): (.*)$", line)
        if entry:
            block[entry.group(1)] = entry.group(2)
        elif line.startswith("Shell command: "):
            if block["rule"] != "all":
                wildcards = dict(v.split("=", 1) for v in block["wildcards"].split(", ") if v)
                seed = wildcards.pop("seed", None)
                name = "@".join([RULE_AS_STAGE.get(block["rule"], block["rule"]), *wildcards.values()])
                inputs = [p for p in block["input"].split(", ") if p]
                job = Job(
                    name=name,
                    cmd=_command(line.removeprefix("Shell command: ")),
                    deps=frozenset(p for p in inputs if not p.startswith(CODE_PREFIXES)),
                    code=frozenset(p for p in inputs if p.startswith(CODE_PREFIXES)),
                    outs=frozenset(p for p in block["output"].split(", ") if p),
                    log=block["log"],
                    resources=block["resources"],
                )
                if block["rule"] in RULE_AS_STAGE:  # its note lies in the folder DVC's stage writes
                    job = Job(name, job.cmd, job.deps, frozenset(str(Path(o).parent) for o in job.outs), job.code,
                              job.log, job.resources)
                jobs[name] = merge_seed_job(jobs.get(name), as_stage(job, seed))
            block = None
    return jobs


RULE_AS_STAGE = {"train_not_selected": "train"}  # the train job of a run the profile leaves out


def as_stage(job: Job, seed: str | None) -> Job:
    """A job per seed as a piece of DVC's per-run stage: `--seeds S` dropped, outputs `.../seed{S}` -> `...`."""
    if seed is None:
        return job
    suffix = f" --seeds {seed}"
    if not job.cmd.endswith(suffix) or any(Path(out).name != f"seed{seed}" for out in job.outs):
        raise ValueError(f"{job.name} seed {seed}: expected a command ending in {suffix!r} and outputs named "
                         f"seed{seed}, got {job.cmd!r} and {sorted(job.outs)}")
    return Job(job.name, job.cmd.removesuffix(suffix), job.deps, frozenset(str(Path(o).parent) for o in job.outs),
               job.code, job.log, job.resources)


def merge_seed_job(known: Job | None, job: Job) -> Job:
    """Two seeds of one stage: the same command and outputs, inputs joined."""
    if known is None:
        return job
    if known.cmd != job.cmd or known.outs != job.outs:
        raise ValueError(f"{job.name}: seeds differ in more than the seed:\n  {known.cmd}\n  {job.cmd}")
    return Job(job.name, job.cmd, known.deps | job.deps, job.outs, known.code | job.code, known.log, job.resources)


def dvc_jobs(workdir: Path) -> dict[str, Job]:
    """Every stage of dvc.yaml as DVC resolves it (templating, foreach), code and params deps left out."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(workdir)) as repo:
        return {
            stage.name: Job(
                name=stage.name,
                cmd=_command(stage.cmd),
                deps=frozenset(
                    dep.def_path for dep in stage.deps
                    if not isinstance(dep, ParamsDependency) and not dep.def_path.startswith(CODE_PREFIXES)
                ),
                outs=frozenset(out.def_path for out in stage.outs),
                code=frozenset(code_files([dep.def_path for dep in stage.deps
                                           if dep.def_path.startswith(CODE_PREFIXES)], workdir)),
            )
            for stage in repo.index.stages
        }


def dvc_native_edges(workdir: Path) -> dict[str, frozenset[str]]:
    """DVC's own graph: each stage with the stages it depends on."""
    from dvc.repo import Repo

    with Repo(str(workdir)) as repo:
        graph = repo.index.graph
        return {s.name: frozenset(d.name for d in graph.successors(s)) for s in graph.nodes}


def _overlap(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def edges(jobs: dict[str, Job]) -> dict[str, frozenset[str]]:
    """Each job with the jobs that write something it reads."""
    return {
        name: frozenset(
            other.name for other in jobs.values()
            if other.name != name and any(_overlap(dep, out) for dep in job.deps for out in other.outs)
        )
        for name, job in jobs.items()
    }


def external_inputs(jobs: dict[str, Job]) -> dict[str, frozenset[str]]:
    """Each job's inputs that no job writes (source files such as the notebook or the paper's numbers)."""
    outs = [out for job in jobs.values() for out in job.outs]
    return {
        name: frozenset(dep for dep in job.deps if not any(_overlap(dep, out) for out in outs))
        for name, job in jobs.items()
    }


def compare(snakemake: dict[str, Job], dvc: dict[str, Job]) -> list[str]:
    """Every difference between the two engines' jobs, commands, outputs and edges (empty: the same DAG)."""
    problems = [f"only in Snakemake: {name}" for name in sorted(snakemake.keys() - dvc.keys())]
    problems += [f"only in DVC: {name}" for name in sorted(dvc.keys() - snakemake.keys())]
    smk_edges, dvc_edges = edges(snakemake), edges(dvc)
    smk_ext, dvc_ext = external_inputs(snakemake), external_inputs(dvc)
    for name in sorted(snakemake.keys() & dvc.keys()):
        s, d = snakemake[name], dvc[name]
        if s.cmd != d.cmd:
            problems.append(f"{name}: commands differ\n  snakemake: {s.cmd}\n  dvc:       {d.cmd}")
        if s.outs != d.outs:
            problems.append(f"{name}: outputs differ: snakemake {sorted(s.outs)}, dvc {sorted(d.outs)}")
        if smk_edges[name] != dvc_edges[name]:
            problems.append(f"{name}: upstream jobs differ: only snakemake {sorted(smk_edges[name] - dvc_edges[name])},"
                            f" only dvc {sorted(dvc_edges[name] - smk_edges[name])}")
        if s.code != d.code:
            problems.append(f"{name}: code differs: only snakemake {sorted(s.code - d.code)}, "
                            f"only dvc {sorted(d.code - s.code)}")
        if smk_ext[name] != dvc_ext[name]:
            problems.append(f"{name}: source inputs differ: snakemake {sorted(smk_ext[name])}, "
                            f"dvc {sorted(dvc_ext[name])}")
    return problems
