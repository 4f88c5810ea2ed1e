"""A single-node SLURM cluster on loopback for the tests: munged, slurmctld and slurmd as child processes.

The configuration goes to /etc/slurm/slurm.conf, because the job-step side of snakemake-executor-plugin-slurm
removes every SLURM_* variable (SLURM_CONF included) before its nested `srun`, which then only finds the default
path. An existing configuration there is never touched: the cluster is not started and the caller skips. State,
logs, spool and the munge key and socket live in a temporary folder; everything is removed on stop.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by the project's test set-up (tests/slurm_cluster.py); removed when the tests end"
PARTITION = "debug"
DAEMONS = ("munged", "munge", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "srun")


class Unavailable(RuntimeError):
    """SLURM cannot be started here; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.processes: list[subprocess.Popen] = []

    def start(self, timeout: float = 60) -> LoopbackCluster:
        missing = [name for name in DAEMONS if shutil.which(name) is None]
        if missing:
            raise Unavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise Unavailable("the loopback cluster runs its daemons as root and writes /etc/slurm/slurm.conf")
        if CONF.exists() and MARKER not in CONF.read_text():
            raise Unavailable(f"{CONF} already exists (a real cluster?); the tests do not overwrite it")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)  # munged wants its socket folder reachable by everyone
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(exist_ok=True)
        key = self.dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.socket = self.dir / "munge.sock"
        self._spawn("munged", ["munged", "--foreground", "--force", f"--socket={self.socket}", f"--key-file={key}",
                               f"--pid-file={self.dir / 'munged.pid'}", f"--log-file={self.dir / 'munged.log'}",
                               f"--seed-file={self.dir / 'munged.seed'}"])
        self._wait(lambda: self.socket.exists(), timeout, "munged did not create its socket")
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        hardware = node.split(" ", 1)[1]  # CPUs=.. Boards=.. ... RealMemory=.., as slurmd sees this machine
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(self._config(hardware))
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost"])
        self._wait(self._idle, timeout, "the node did not become idle (see slurmctld.log / slurmd.log)")
        return self

    def _config(self, hardware: str) -> str:
        d = self.dir
        return "\n".join([
            MARKER,
            "ClusterName=ranci",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.socket}",
            "CryptoType=crypto/munge",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={d / 'state'}",
            f"SlurmdSpoolDir={d / 'spool'}",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'slurmd.pid'}",
            f"SlurmctldLogFile={d / 'slurmctld.log'}",
            f"SlurmdLogFile={d / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            # No accounting database: finished jobs are known to squeue for MinJobAge seconds, which must exceed
            # 3x the plugin's first status check (its rule for trusting squeue).
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MinJobAge=600",
            "ReturnToService=2",
            f"NodeName=localhost NodeAddr=127.0.0.1 {hardware} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.dir / f"{name}.out", "w")  # noqa: SIM115 - closed with the process
        self.processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        time.sleep(0.5)
        if self.processes[-1].poll() is not None:
            raise Unavailable(f"{name} exited at once: {(self.dir / f'{name}.out').read_text()[-2000:]}")

    @staticmethod
    def _idle() -> bool:
        result = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _wait(self, ready, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.5)
        self.stop()
        raise Unavailable(message)

    def stop(self) -> None:
        for process in reversed(self.processes):  # slurmd, slurmctld, then munged: only the ones started here
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        if CONF.exists() and MARKER in CONF.read_text():
            CONF.unlink()
