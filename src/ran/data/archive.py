"""Small file helpers shared by the data commands: checksums, atomic writes, sidecars, deterministic .tar.gz."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Mapping
from pathlib import Path

from ran.atomic import atomic_path, write_bytes_atomic
from ran.data import DataError

CHUNK = 1 << 20
# A fixed member mtime (2009-01-01, the CIFAR release year) and gzip mtime 0: equal inputs give equal bytes.
TAR_MTIME = 1_230_768_000


def file_digests(path: str | Path, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file, read once in 1 MiB chunks."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            for digest in hashes.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def sha256_file(path: str | Path) -> str:
    return file_digests(path)["sha256"]


def compact_json(value) -> str:
    """Indented JSON with every list of scalars on one line (per-class counts stay readable)."""
    text = json.dumps(value, indent=2)
    one_line = lambda match: "[" + ", ".join(re.split(r",\n\s*", match.group(1))) + "]"  # noqa: E731
    return re.sub(r"\[\n\s+([^\[\]{}]*?)\n\s*\]", one_line, text)


def sidecar_path(archive: str | Path) -> Path:
    archive = Path(archive)
    return archive.with_name(archive.name + ".sha256")


def write_sidecar(archive: str | Path, sha256: str) -> Path:
    """`ARCHIVE.sha256` in `sha256sum` format, so `sha256sum -c` can check it too."""
    path = sidecar_path(archive)
    write_bytes_atomic(path, f"{sha256}  {Path(archive).name}\n".encode())
    return path


def read_sidecar(archive: str | Path) -> str:
    path = sidecar_path(archive)
    if not path.is_file():
        raise DataError(f"checksum sidecar {path} not found: it is written by `ran synth` beside the archive; "
                        f"run `ran synth` again to regenerate both.")
    fields = path.read_text().split()
    if not fields or len(fields[0]) != 64 or any(c not in "0123456789abcdef" for c in fields[0]):
        raise DataError(f"checksum sidecar {path} does not start with a sha256 hex digest (64 lower-case hex "
                        f"characters); run `ran synth` again to regenerate it.")
    return fields[0]


def write_deterministic_targz(path: str | Path, members: Mapping[str, bytes | Path],
                              pax_headers: Mapping[str, str] | None = None, compresslevel: int = 6) -> str:
    """Write `members` (archive name -> bytes or a file to copy) as a reproducible .tar.gz; return its sha256.

    Members are sorted, their folders are added as directory entries (as in the official archives), and owner,
    permissions and times are fixed, so the same content always gives the same bytes with the same zlib.
    `pax_headers` go into a PAX global header, which readers expose as metadata, not as a member.
    """
    names = sorted(members)
    folders = sorted({str(Path(name).parent) for name in names} - {"."})
    with atomic_path(path) as temp:
        with open(temp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                     compresslevel=compresslevel) as zipped:
            tar_format = tarfile.PAX_FORMAT if pax_headers else tarfile.GNU_FORMAT
            with tarfile.open(fileobj=zipped, mode="w", format=tar_format, pax_headers=dict(pax_headers or {})) as tar:
                for folder in folders:
                    tar.addfile(_tar_info(folder + "/", tarfile.DIRTYPE, 0, 0o755))
                for name in names:
                    content = members[name]
                    if isinstance(content, bytes):
                        tar.addfile(_tar_info(name, tarfile.REGTYPE, len(content), 0o644), io.BytesIO(content))
                    else:
                        with open(content, "rb") as stream:
                            size = os.fstat(stream.fileno()).st_size
                            tar.addfile(_tar_info(name, tarfile.REGTYPE, size, 0o644), stream)
        return sha256_file(temp)


def _tar_info(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, mode, TAR_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
