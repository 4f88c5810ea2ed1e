"""Safe reading of CIFAR archives: every member is checked before anything touches the disk.

The official binary archives hold only regular files under one folder. Anything else (an absolute path, a `..`
component, a link, a device) means the archive is not what it claims to be, so it is refused with the member's name,
even where tarfile's own `filter="data"` would merely rewrite it.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ran.data import DataError

GZIP_MAGIC = b"\x1f\x8b"
# What a truncated or damaged .tar.gz raises somewhere in gzip, zlib or tarfile.
CORRUPT_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


# What to do about a bad archive, for callers that do not say otherwise.
REDOWNLOAD = "Delete it and run `ran download` again, or supply a trusted copy."


class UnsafeArchiveError(DataError):
    """An archive member could escape the extraction folder or is not a plain file or folder."""


def check_member(member: tarfile.TarInfo, archive: str | Path, advice: str = REDOWNLOAD) -> None:
    """Refuse absolute paths, `..`, links, devices and anything that is not a regular file or a folder."""
    path = PurePosixPath(member.name)
    problem = None
    if path.is_absolute() or member.name.startswith(("/", "\\")) or (len(member.name) > 1 and member.name[1] == ":"):
        problem = "has an absolute path"
    elif ".." in path.parts or "\\" in member.name:
        problem = "has a '..' component or a backslash (it would be written outside the extraction folder)"
    elif member.issym() or member.islnk():
        problem = f"is a {'symbolic' if member.issym() else 'hard'} link (to {member.linkname!r})"
    elif member.isdev():
        problem = "is a device or FIFO"
    elif not (member.isfile() or member.isdir()):
        problem = f"has tar type {member.type!r}, not a regular file or folder"
    if problem:
        raise UnsafeArchiveError(
            f"refusing to read {archive}: member {member.name!r} {problem}. Official CIFAR archives contain only "
            f"regular files in one folder, so this file is not an official archive or has been tampered with. "
            f"{advice}"
        )


def _require_file(archive: str | Path) -> None:
    if not Path(archive).is_file():
        raise DataError(f"archive {archive} not found; run `ran download` first (it writes the verified archive).")


def _corrupt(archive: str | Path, error: BaseException, advice: str = REDOWNLOAD) -> DataError:
    return DataError(f"archive {archive} is truncated or corrupt ({type(error).__name__}: {error}); expected a "
                     f"complete .tar.gz. {advice}")


def _missing(archive: str | Path, missing: Iterable[str], advice: str = "") -> DataError:
    return DataError(f"archive {archive} lacks the expected member(s) {sorted(missing)}; it is not the official "
                     f"binary-format archive of this dataset (the Python-pickle and MATLAB versions are not "
                     f"accepted). Supply the binary version (e.g. 'CIFAR-10 binary version' on the CIFAR page). "
                     f"{advice}".strip())


def scan_archive(archive: str | Path, required: Iterable[str] = (), name: str | None = None,
                 advice: str = REDOWNLOAD, digests: dict[str, str] | None = None) -> dict[str, str]:
    """Read the whole archive once: check every member, read all data (catching truncation), check `required`.

    Returns the archive's PAX global headers (empty for ordinary archives). `name` is how messages call the file
    (a download checks its `.part` file but reports the output it was meant for). `digests`, when given, receives
    the sha256 of every regular member, read in the same pass.
    """
    required = set(required)
    _require_file(archive)
    path, archive = archive, name or archive
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            # A .tar.gz is decompressed by us, so that its gzip trailer (CRC-32 and length) is read and checked too:
            # tarfile stops at the end-of-archive blocks and would miss a damaged or cut tail.
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            with tarfile.open(fileobj=stream, mode="r|" if gzipped else "r|*") as tar:
                seen = set()
                for member in tar:
                    check_member(member, archive, advice)
                    seen.add(member.name.rstrip("/"))
                    if member.isfile():
                        content, digest = tar.extractfile(member), hashlib.sha256()
                        while chunk := content.read(1 << 20):
                            digest.update(chunk)
                        if digests is not None:
                            digests[member.name] = digest.hexdigest()
                headers = dict(tar.pax_headers)
            _read_to_the_end(stream)
    except UnsafeArchiveError:
        raise
    except CORRUPT_ERRORS as error:
        raise _corrupt(archive, error, advice) from error
    if required - seen:
        raise _missing(archive, required - seen, advice)
    return headers


def _read_to_the_end(stream) -> None:
    """Read a gzip stream to its end, where its CRC-32 and length are checked (tarfile stops before them)."""
    if isinstance(stream, gzip.GzipFile):
        while stream.read(1 << 20):
            pass


def safe_extract(archive: str | Path, destination: str | Path, members: Iterable[str]) -> dict[str, str]:
    """Extract the named `members` into `destination` after checking every member; return the PAX headers.

    The explicit check refuses the whole archive on any unsafe member; `filter="data"` is the second line of
    defence (it also drops owner and permission bits we have no use for).
    """
    wanted = set(members)
    _require_file(archive)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            all_members = tar.getmembers()
            for member in all_members:
                check_member(member, archive)
            selected = [member for member in all_members if member.name in wanted]
            missing = wanted - {member.name for member in selected}
            if missing:
                _read_to_the_end(tar.fileobj)  # damage can end the member list early: then say it is corrupt
                raise _missing(archive, missing)
            tar.extractall(destination, members=selected, filter="data")
            _read_to_the_end(tar.fileobj)
            return dict(tar.pax_headers)
    except DataError:
        raise
    except tarfile.FilterError as error:
        raise UnsafeArchiveError(f"refusing to extract {archive}: {error}") from error
    except CORRUPT_ERRORS as error:
        raise _corrupt(archive, error) from error
