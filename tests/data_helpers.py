"""Test helpers for the data tests: tiny archives and a loopback HTTP server with scripted misbehaviour."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_gz(members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    """A .tar.gz of regular-file members plus any hand-made TarInfo entries (links, bad names)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.size else None)
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.files[path]`, honouring Range; `server.faults[path]` scripts failures for the first request."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        nth = sum(path == self.path for path, _ in server.requests)
        if self.path not in server.files:
            self.send_error(404)
            return
        fault = server.faults.get(self.path) if nth == 1 else None
        if fault == "500":
            self.send_error(500)
            return
        data = server.files[self.path]
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "drop":  # half the body, then the connection closes
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@contextmanager
def http_server(files: dict[str, bytes], faults: dict[str, str] | None = None) -> Iterator[ThreadingHTTPServer]:
    """A server on 127.0.0.1 (free port); `server.url(path)` addresses a file, `server.requests` logs requests."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.faults, server.requests = files, faults or {}, []
    server.url = lambda path: f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
