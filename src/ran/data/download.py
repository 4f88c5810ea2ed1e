"""`ran download`: one verified CIFAR binary archive per dataset, whatever the source.

Sources, in the order they are chosen: `--url` (manual use); the synthetic archive when the profile's `data` is
`synthetic` (written by `ran synth`'s code from params.yaml's `synthetic` section, then fetched as `file://` and
checked against its `.sha256` sidecar: the same code path as a real download);
`datasets.D.local` (a pre-downloaded archive, fetched the same way, or an extracted folder, which is re-packed into a
deterministic .tar.gz so later steps see one kind of input); `datasets.D.url`.

A local copy need not be the official tarball (a repack, or the extracted files): where the official per-file sha256
of the record files is known (CIFAR-10), each record file of the copy is checked against it instead of the tarball's
md5. Otherwise (CIFAR-100) a local archive must match the configured md5/sha256.

A download is written to `OUT.part`, resumed with an HTTP Range request after a dropped connection, retried with
exponential backoff, checked against the configured md5/sha256 and read through completely (member safety,
truncation, the expected members) before it is renamed onto OUT. A failed check deletes `OUT.part`; an interrupted
transfer keeps it for the next attempt. OUT therefore exists only when it is verified.
"""

from __future__ import annotations

import argparse
import fcntl
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm

from ran.data import DataError, local_copy_hint
from ran.data.archive import CHUNK, file_digests, read_sidecar, write_deterministic_targz
from ran.data.extract import scan_archive
from ran.data.layout import LAYOUTS, get_layout

USER_AGENT = "residual-attention-replication/0.1 (+urllib)"
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
CHECKSUMS = ("md5", "sha256")


@dataclass(frozen=True)
class Source:
    """Where a dataset's archive comes from: a URL (with optional checksums) or an extracted folder."""

    dataset: str
    url: str | None = None
    folder: Path | None = None
    md5: str | None = None
    sha256: str | None = None
    origin: str = "the command line"  # where the source was configured, for error messages
    by_files: bool = False  # verify the record files against the official per-file sha256, not the archive


    def checksums(self) -> dict[str, str]:
        return {name: getattr(self, name).lower() for name in CHECKSUMS if getattr(self, name)}


class _Incomplete(Exception):
    """The connection ended before Content-Length bytes arrived (retryable; the .part file is kept)."""


def source_from_params(params: dict, dataset: str, profile: dict, synthetic: str | Path | None,
                       base_dir: str | Path = ".") -> Source:
    """The source the resolved `profile` and params.yaml's `datasets` section give for `dataset`."""
    if profile["data"] == "synthetic":
        if synthetic is None:
            raise DataError(f"profile {profile['name']!r} uses synthetic data: pass the archive written by "
                            f"`ran synth` (`ran download --synthetic PATH`), or none to have it written.")
        path = Path(synthetic).resolve()
        if not path.is_file():
            raise DataError(f"synthetic archive {path} not found; write it first with `ran synth --params "
                            f"params.yaml --dataset {dataset} --out {synthetic}`.")
        return Source(dataset, url=path.as_uri(), sha256=read_sidecar(path),
                      origin=f"the synthetic archive of profile {profile['name']!r}")
    config = params["datasets"][dataset]
    checksums = {name: config.get(name) for name in CHECKSUMS}
    if "local" in config:
        local = Path(config["local"]).expanduser()
        local = local if local.is_absolute() else Path(base_dir) / local
        origin = f"datasets.{dataset}.local in params.yaml"
        by_files = bool(get_layout(dataset).official_sha256)
        if local.is_dir():
            return Source(dataset, folder=local, origin=origin, by_files=by_files)
        if local.is_file():
            checksums = {} if by_files else checksums
            return Source(dataset, url=local.resolve().as_uri(), origin=origin, by_files=by_files, **checksums)
        raise DataError(f"datasets.{dataset}.local in params.yaml is {config['local']!r}, but {local} is neither "
                        f"a file nor a folder; fix the path (relative paths are relative to params.yaml's folder) "
                        f"or remove the key to download from datasets.{dataset}.url.")
    return Source(dataset, url=config["url"], origin=f"datasets.{dataset}.url in params.yaml", **checksums)


def fetch(url: str, part: Path, *, dataset: str = "D", attempts: int = 5, backoff: float = 1.0,
          timeout: float = 60.0) -> int:
    """Download `url` into `part`, resuming what is already there; return the offset the final attempt resumed from.

    Retries dropped connections, timeouts and 408/429/5xx answers, waiting backoff, 2*backoff, 4*backoff, ...
    """
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(urlparse(url).path))
        if not path.is_file():
            raise DataError(f"cannot read {url}: {path} is not a file. {local_copy_hint(dataset)}")
    last_error: BaseException | None = None
    for attempt in range(1, attempts + 1):
        try:
            return _fetch_once(url, part, timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and part.exists():  # our .part is longer than the file: start again
                part.unlink()
            elif error.code not in RETRYABLE_HTTP:
                raise DataError(f"downloading {url} failed with HTTP {error.code} ({error.reason}); the address may "
                                f"be wrong or the file moved. {local_copy_hint(dataset)}") from error
            last_error = error
        except (urllib.error.URLError, http.client.HTTPException, OSError, _Incomplete) as error:
            last_error = error
        if attempt < attempts:
            delay = backoff * 2 ** (attempt - 1)
            print(f"download: attempt {attempt}/{attempts} of {url} failed ({last_error}); retrying in {delay:g} s",
                  file=sys.stderr)
            time.sleep(delay)
    kept = f" The {part.stat().st_size} bytes received are kept in {part} and the next run resumes from them." \
        if part.exists() else ""
    raise DataError(f"could not download {url} after {attempts} attempts (last error: {last_error}); the host may "
                    f"be unreachable from this machine.{kept} {local_copy_hint(dataset)}")


def _fetch_once(url: str, part: Path, timeout: float) -> int:
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset and url.startswith(("http:", "https:")):
        request.add_header("Range", f"bytes={offset}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.getcode() == 206:
            if not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                part.unlink()
                raise _Incomplete(f"asked for bytes from {offset} but got {response.headers.get('Content-Range')}")
        else:  # 200 (or file://): the server sends the whole file, so the .part starts over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as stream, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, mininterval=1.0,
            desc=part.name.removesuffix(".part"), leave=False,
        ) as bar:
            while chunk := response.read(CHUNK):
                stream.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Incomplete(f"connection closed after {size} of {total} bytes")
    return offset


def _verify_checksums(path: Path, source: Source, out: Path) -> None:
    expected = source.checksums()
    actual = file_digests(path, tuple(expected))
    wrong = [f"{name} {expected[name]} but got {actual[name]}" for name in expected if actual[name] != expected[name]]
    if wrong:
        raise DataError(f"checksum mismatch for {out} (from {source.url}, configured by {source.origin}): expected "
                        f"{'; '.join(wrong)}. The download was deleted, so nothing unverified is left behind. The "
                        f"source is truncated, corrupt or a different file; try again, or fix the checksum if you "
                        f"changed the source on purpose. {local_copy_hint(source.dataset)}")


def check_official_files(actual: dict[str, str], dataset: str, where: str) -> str:
    """Compare record-file sha256 (archive member name -> hex) with the official ones; say what was verified."""
    official = get_layout(dataset).official_member_sha256()
    wrong = [f"{name}: sha256 {actual.get(name, 'missing')}, official {digest}" for name, digest in official.items()
             if actual.get(name) != digest]
    if wrong:
        raise DataError(f"{where} is not the official {dataset}: {len(wrong)} of its {len(official)} record files "
                        f"differ from the official ones ({'; '.join(wrong)}). Nothing was written. Supply the "
                        f"official files (the binary version), e.g. by removing datasets.{dataset}.local to "
                        f"download them.")
    return f"its {len(official)} record files match the official per-file sha256"


@contextmanager
def exclusive(out: Path):
    """Hold `.OUT.lock` for the whole download: a second `ran download` to the same OUT waits for the first (they
    would share one `.part`), then finds the verified archive in place. The lock file is removed afterwards; a
    waiter that wakes on a removed file locks the new one instead (the usual flock + inode check)."""
    lock, waited = out.with_name(f".{out.name}.lock"), False
    while True:
        handle = open(lock, "a")  # noqa: SIM115 (held across the yield)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                print(f"download: another `ran download` is writing {out}; waiting for it to finish", file=sys.stderr)
                waited = True
            fcntl.flock(handle, fcntl.LOCK_EX)
        if lock.exists() and lock.stat().st_ino == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()
    try:
        yield  # a killed process releases the lock with its file descriptors
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


def download(source: Source, out: str | Path, *, attempts: int = 5, backoff: float = 1.0,
             timeout: float = 60.0) -> Path:
    """Fetch, verify and atomically place the archive of `source` at `out`; return `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        return _download(source, out, attempts=attempts, backoff=backoff, timeout=timeout)


def _download(source: Source, out: Path, *, attempts: int, backoff: float, timeout: float) -> Path:
    layout = get_layout(source.dataset)
    if source.folder is not None:
        return pack_folder(source.folder, source.dataset, out, by_files=source.by_files)
    expected = source.checksums()
    if not expected and source.by_files:
        print(f"download: {source.url} ({source.origin}) is checked file by file against the official record "
              f"files", file=sys.stderr)
    elif not expected:
        print(f"download: warning: no md5/sha256 configured for {source.url}; only the archive's structure is "
              f"checked", file=sys.stderr)
    if out.is_file() and expected and file_digests(out, tuple(expected)) == expected:
        print(f"download: {out} is already present and verified", file=sys.stderr)
        return out
    out.unlink(missing_ok=True)
    part = out.with_name(out.name + ".part")
    resumed_from = fetch(source.url, part, dataset=source.dataset, attempts=attempts, backoff=backoff, timeout=timeout)
    try:
        try:
            _verify_checksums(part, source, out)
        except DataError:
            if not resumed_from:
                raise
            # The kept .part may come from an older file at the same address: one fresh download settles it.
            print("download: checksum mismatch after a resumed download; downloading again from the start",
                  file=sys.stderr)
            part.unlink()
            fetch(source.url, part, dataset=source.dataset, attempts=attempts, backoff=backoff, timeout=timeout)
            _verify_checksums(part, source, out)
        digests = {}
        scan_archive(part, layout.members(), name=f"{out} (downloaded from {source.url})",
                     advice=f"The download was deleted. {local_copy_hint(source.dataset)}", digests=digests)
        verified = [f"archive {', '.join(expected)}"] if expected else []
        if source.by_files:
            verified.append(check_official_files(digests, source.dataset, f"{source.url} ({source.origin})"))
    except DataError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, out)
    print(f"download: {out} verified ({'; '.join(verified) or 'structure only'})", file=sys.stderr)
    return out


def pack_folder(folder: str | Path, dataset: str, out: str | Path, by_files: bool = False) -> Path:
    """Re-pack an extracted CIFAR folder's files into a deterministic archive with the official member names.

    Archive checksums cannot apply to a re-pack: with `by_files` each record file is checked against its official
    sha256 first; `ran prepare` records the sha256 of every record file either way. Accepts the folder that holds
    `cifar-10-batches-bin/` (or `cifar-100-binary/`) or that folder itself.
    """
    layout = get_layout(dataset)
    folder = Path(folder)
    files = [*layout.train_files, *layout.test_files, layout.names_file, *filter(None, [layout.coarse_names_file])]
    for root in (folder / layout.folder, folder):
        if all((root / file).is_file() for file in files):
            members = {layout.member(file): root / file for file in files}
            verified = "not verified: no official per-file hashes are known for it"
            if by_files:
                actual = {name: file_digests(path)["sha256"] for name, path in members.items()
                          if name in layout.official_member_sha256()}
                verified = check_official_files(actual, dataset, f"folder {root}")
            sha256 = write_deterministic_targz(out, members)
            print(f"download: packed {root} into {out} (sha256 {sha256}); {verified}", file=sys.stderr)
            return Path(out)
    missing = [file for file in files if not any((root / file).is_file() for root in (folder / layout.folder, folder))]
    raise DataError(f"folder {folder} is not an extracted {dataset} binary archive: missing {missing} (looked in "
                    f"{folder / layout.folder} and {folder}). Point datasets.{dataset}.local at the folder that "
                    f"holds {layout.folder}/ or at the archive itself.")


def _hex(length: int):
    def parse(text: str) -> str:
        text = text.strip().lower()
        if len(text) != length or any(c not in "0123456789abcdef" for c in text):
            raise argparse.ArgumentTypeError(f"expected {length} hex digits, got {text!r}")
        return text
    return parse


def _override(source: Source, args) -> Source:
    return replace(source, **{name: getattr(args, name) for name in CHECKSUMS if getattr(args, name)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran download", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile whose `data` decides official vs synthetic (default: params')")
    parser.add_argument("--dataset", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--synthetic", help="synthetic archive (with .sha256 sidecar) to take for a synthetic profile "
                                            "(default: written from params.yaml's `synthetic` section)")
    parser.add_argument("--out", required=True, help="where the verified archive is written")
    parser.add_argument("--url", help="download from this http(s):// or file:// address instead of params.yaml")
    parser.add_argument("--md5", type=_hex(32), help="expected md5 of the archive (overrides params.yaml)")
    parser.add_argument("--sha256", type=_hex(64), help="expected sha256 of the archive (overrides params.yaml)")
    parser.add_argument("--attempts", type=int, default=5, help="download attempts (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in s (default: %(default)s)")
    args = parser.parse_args(argv)
    from ran.config import ConfigError, load_params, needed_datasets, resolve_profile
    from ran.data.skipped import not_needed_reason, write_not_needed_archive
    from ran.data.synthetic import write_synthetic_archive

    try:
        if not args.url:
            params = load_params(args.params)
            profile = resolve_profile(params, args.profile)
            if args.dataset not in needed_datasets(params, profile["name"]):
                reason = not_needed_reason(args.dataset, profile["name"])
                write_not_needed_archive(args.out, reason)
                print(f"download: {reason}; wrote the marker {args.out}", file=sys.stderr)
                return 0
        if args.url:
            if not args.url.startswith(("http://", "https://", "file://")):
                parser.error(f"--url must start with http://, https:// or file://, got {args.url!r}")
            source = Source(args.dataset, url=args.url, origin="--url")
        elif profile["data"] == "synthetic" and args.synthetic is None:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=Path(args.out).parent, prefix=".synthetic-") as folder:
                archive = Path(folder) / f"{args.dataset}-binary.tar.gz"
                write_synthetic_archive(archive, args.dataset, **params["synthetic"])
                source = source_from_params(params, args.dataset, profile, archive)
                download(_override(source, args), args.out, attempts=args.attempts, timeout=args.timeout)
            return 0
        else:
            source = source_from_params(params, args.dataset, profile, args.synthetic, Path(args.params).parent)
        download(_override(source, args), args.out, attempts=args.attempts, timeout=args.timeout)
    except (DataError, ConfigError) as error:
        parser.exit(1, f"ran download: {error}\n")
    return 0
