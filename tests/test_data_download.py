"""`ran download`: verified, resumable, retried downloads over loopback HTTP and file://, and local sources."""

from __future__ import annotations

import json
import socket
import tarfile
from dataclasses import replace

import pytest

from data_helpers import http_server, sha256, tar_gz
from ran.data import DataError
from ran.data.archive import read_sidecar, sha256_file
from ran.data.download import Source, download, pack_folder, source_from_params
from ran.data.extract import safe_extract, scan_archive
from ran.data.layout import LAYOUTS, get_layout
from ran.data.synthetic import synthetic_members, write_synthetic_archive

FAST = {"attempts": 3, "backoff": 0.01, "timeout": 5.0}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A tiny synthetic CIFAR-10 archive: (path, bytes)."""
    path = tmp_path_factory.mktemp("synthetic") / "cifar10-binary.tar.gz"
    write_synthetic_archive(path, "cifar10", train_per_class=2, test_per_class=1, seed=3)
    return path, path.read_bytes()


def _no_leftovers(out):
    assert not out.exists()
    assert not out.with_name(out.name + ".part").exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


def test_http_download_verifies_and_writes_atomically(archive, tmp_path):
    _, data = archive
    with http_server({"/c10.tar.gz": data}) as server:
        out = download(Source("cifar10", url=server.url("/c10.tar.gz"), sha256=sha256(data)), tmp_path / "a.tar.gz",
                       **FAST)
    assert out.read_bytes() == data
    assert not (tmp_path / "a.tar.gz.part").exists()


def test_resume_after_dropped_connection_uses_range(archive, tmp_path):
    _, data = archive
    with http_server({"/c10.tar.gz": data}, faults={"/c10.tar.gz": "drop"}) as server:
        out = download(Source("cifar10", url=server.url("/c10.tar.gz"), sha256=sha256(data)), tmp_path / "a.tar.gz",
                       **FAST)
    assert out.read_bytes() == data
    (_, first_range), (_, second_range) = server.requests
    assert first_range is None
    assert second_range == f"bytes={len(data) // 2}-"  # resumed exactly where the dropped transfer stopped


def test_stale_partial_download_is_replaced(archive, tmp_path):
    """A kept .part from another file fails the checksum after resuming; one fresh download then succeeds."""
    _, data = archive
    out = tmp_path / "a.tar.gz"
    out.with_name("a.tar.gz.part").write_bytes(b"not the archive")
    with http_server({"/c10.tar.gz": data}) as server:
        download(Source("cifar10", url=server.url("/c10.tar.gz"), sha256=sha256(data)), out, **FAST)
    assert out.read_bytes() == data
    assert [rng for _, rng in server.requests] == ["bytes=15-", None]


def test_retry_after_server_error(archive, tmp_path):
    _, data = archive
    with http_server({"/c10.tar.gz": data}, faults={"/c10.tar.gz": "500"}) as server:
        out = download(Source("cifar10", url=server.url("/c10.tar.gz"), md5=None, sha256=sha256(data)),
                       tmp_path / "a.tar.gz", **FAST)
    assert out.read_bytes() == data
    assert len(server.requests) == 2


def test_wrong_checksum_leaves_nothing(archive, tmp_path):
    _, data = archive
    out = tmp_path / "a.tar.gz"
    with http_server({"/c10.tar.gz": data}) as server, pytest.raises(DataError) as error:
        download(Source("cifar10", url=server.url("/c10.tar.gz"), md5="0" * 32), out, **FAST)
    message = str(error.value)
    assert "checksum mismatch" in message and "0" * 32 in message and "datasets.cifar10.local" in message
    _no_leftovers(out)


def test_missing_file_is_not_retried(tmp_path):
    with http_server({}) as server, pytest.raises(DataError, match="HTTP 404"):
        download(Source("cifar10", url=server.url("/nothing.tar.gz")), tmp_path / "a.tar.gz", **FAST)
    assert len(server.requests) == 1


def test_unreachable_host_gives_local_copy_hint(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError) as error:
        download(Source("cifar10", url=f"http://127.0.0.1:{port}/c10.tar.gz"), tmp_path / "a.tar.gz", **FAST)
    assert "after 3 attempts" in str(error.value) and "datasets.cifar10.local" in str(error.value)
    _no_leftovers(tmp_path / "a.tar.gz")


def test_truncated_archive_is_refused_even_with_matching_checksum(archive, tmp_path):
    _, data = archive
    truncated = data[: len(data) * 2 // 3]
    with http_server({"/c10.tar.gz": truncated}) as server, pytest.raises(DataError, match="truncated or corrupt"):
        download(Source("cifar10", url=server.url("/c10.tar.gz"), sha256=sha256(truncated)), tmp_path / "a.tar.gz",
                 **FAST)
    _no_leftovers(tmp_path / "a.tar.gz")


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(("extra", "fragment"), [
    ({"name": "../evil.txt"}, "'..' component"),
    ({"name": "/tmp/evil.txt"}, "absolute path"),
    ({"link": _link("cifar-10-batches-bin/evil", "/etc/passwd", tarfile.SYMTYPE)}, "symbolic link"),
    ({"link": _link("cifar-10-batches-bin/hard", "/etc/passwd", tarfile.LNKTYPE)}, "hard link"),
])
def test_unsafe_members_are_refused_by_download_and_extraction(tmp_path, extra, fragment):
    members = synthetic_members("cifar10", 1, 1, seed=0)
    if "name" in extra:
        members[extra["name"]] = b"payload"
    data = tar_gz(members, extra=[extra["link"]] if "link" in extra else [])
    out = tmp_path / "a.tar.gz"
    with http_server({"/x.tar.gz": data}) as server, pytest.raises(DataError, match=fragment) as error:
        download(Source("cifar10", url=server.url("/x.tar.gz"), sha256=sha256(data)), out, **FAST)
    assert "refusing" in str(error.value)
    _no_leftovers(out)
    unsafe = tmp_path / "unsafe.tar.gz"
    unsafe.write_bytes(data)
    with pytest.raises(DataError, match=fragment):
        safe_extract(unsafe, tmp_path / "extracted", get_layout("cifar10").members())
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "extracted").exists()


def test_archive_without_the_binary_files_is_refused(tmp_path):
    data = tar_gz({"cifar-10-batches-py/data_batch_1": b"pickle"})
    source = tmp_path / "py.tar.gz"
    source.write_bytes(data)
    with pytest.raises(DataError, match="lacks the expected member"):
        download(Source("cifar10", url=source.as_uri(), sha256=sha256(data)), tmp_path / "a.tar.gz", **FAST)


def test_file_url_and_already_verified_output(archive, tmp_path):
    path, data = archive
    out = tmp_path / "a.tar.gz"
    source = Source("cifar10", url=path.as_uri(), sha256=read_sidecar(path))
    assert download(source, out, **FAST).read_bytes() == data
    before = out.stat().st_mtime_ns
    download(source, out, **FAST)  # a verified output is kept, not fetched again
    assert out.stat().st_mtime_ns == before


def test_local_folder_is_repacked_deterministically(archive, tmp_path):
    path, _ = archive
    safe_extract(path, tmp_path / "extracted", get_layout("cifar10").members())
    first = pack_folder(tmp_path / "extracted", "cifar10", tmp_path / "first.tar.gz")
    # The folder that holds the files directly is accepted too, and gives the same bytes.
    second = download(Source("cifar10", folder=tmp_path / "extracted" / "cifar-10-batches-bin"),
                      tmp_path / "second.tar.gz")
    assert sha256_file(first) == sha256_file(second)
    with tarfile.open(first) as tar:
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == get_layout("cifar10").members()
        for member in get_layout("cifar10").members():
            with tarfile.open(path) as original:
                assert tar.extractfile(member).read() == original.extractfile(member).read()
    with pytest.raises(DataError, match="missing"):
        pack_folder(tmp_path, "cifar100", tmp_path / "none.tar.gz")


OFFICIAL_URL = "https://example.invalid/cifar-10-binary.tar.gz"


def _params(cifar10: dict) -> dict:
    """The datasets section a source is read from (the tests' own, never the repository's params.yaml)."""
    cifar100 = {"url": OFFICIAL_URL.replace("10", "100"), "md5": "cd" * 16}
    return {"datasets": {"cifar10": cifar10, "cifar100": cifar100}}


def test_sources_from_params(archive, tmp_path):
    path, _ = archive
    smoke = {"name": "smoke", "data": "synthetic"}
    official = {"name": "paper", "data": "official"}
    remote_params = _params({"url": OFFICIAL_URL, "md5": "ab" * 16})
    synthetic = source_from_params(remote_params, "cifar10", smoke, path)
    assert synthetic.url == path.resolve().as_uri() and synthetic.sha256 == read_sidecar(path)
    with pytest.raises(DataError, match="--synthetic"):
        source_from_params(remote_params, "cifar10", smoke, None)
    remote = source_from_params(remote_params, "cifar10", official, path)
    assert (remote.url, remote.md5, remote.by_files) == (OFFICIAL_URL, "ab" * 16, False)
    # A local CIFAR-10 copy is checked file by file; the official tarball's md5 does not apply to it.
    local = source_from_params(_params({"local": path.name, "md5": "ab" * 16}), "cifar10", official, None,
                               base_dir=path.parent)
    assert (local.url, local.checksums(), local.by_files) == (path.resolve().as_uri(), {}, True)
    # No per-file hashes are known for CIFAR-100: its local archive keeps the configured checksum.
    c100 = {**_params({"url": OFFICIAL_URL})["datasets"]["cifar100"], "local": path.name}
    local100 = source_from_params({"datasets": {"cifar100": c100}}, "cifar100", official, None, base_dir=path.parent)
    assert (local100.checksums(), local100.by_files) == ({"md5": "cd" * 16}, False)
    folder = source_from_params(_params({"local": str(tmp_path)}), "cifar10", official, None)
    assert (folder.folder, folder.by_files) == (tmp_path, True)
    with pytest.raises(DataError, match="neither a file nor a folder"):
        source_from_params(_params({"local": str(tmp_path / "nope")}), "cifar10", official, None)


@pytest.fixture
def official_is(monkeypatch):
    """Make the given archive's record files 'the official ones' (the real hashes need the real 170 MB data)."""
    def patch(archive_path):
        layout = get_layout("cifar10")
        digests = {}
        scan_archive(archive_path, digests=digests)
        files = tuple((file, digests[layout.member(file)]) for file in (*layout.train_files, *layout.test_files))
        monkeypatch.setitem(LAYOUTS, "cifar10", replace(layout, official_sha256=files))
        return files
    return patch


def _repack(source, out, change=None):
    """The same members in a tarball of other metadata (a mirror's repack), optionally one member altered."""
    with tarfile.open(source) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    if change:
        members[change] = members[change][:-1] + bytes([members[change][-1] ^ 1])
    out.write_bytes(tar_gz(members))
    return out


def test_local_repack_of_official_files_is_verified_file_by_file(archive, tmp_path, official_is, capsys):
    path, _ = archive
    official_is(path)
    repack = _repack(path, tmp_path / "mirror.tar.gz")
    assert sha256_file(repack) != sha256_file(path)  # not the "official" tarball, but the official files
    source = source_from_params(_params({"local": str(repack), "md5": "ab" * 16}), "cifar10",
                                {"name": "paper", "data": "official"}, None)
    download(source, tmp_path / "a.tar.gz", **FAST)
    assert "6 record files match the official per-file sha256" in capsys.readouterr().err
    altered = _repack(path, tmp_path / "altered.tar.gz", change="cifar-10-batches-bin/data_batch_3.bin")
    source = source_from_params(_params({"local": str(altered)}), "cifar10", {"name": "paper", "data": "official"},
                                None)
    with pytest.raises(DataError, match=r"1 of its 6 record files differ.*data_batch_3\.bin: sha256 [0-9a-f]{64}"):
        download(source, tmp_path / "b.tar.gz", **FAST)
    _no_leftovers(tmp_path / "b.tar.gz")


def test_local_folder_is_verified_file_by_file(archive, tmp_path, official_is):
    path, _ = archive
    official_is(path)
    safe_extract(path, tmp_path / "copy", get_layout("cifar10").members())
    download(Source("cifar10", folder=tmp_path / "copy", by_files=True), tmp_path / "a.tar.gz")
    (tmp_path / "copy" / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\0" * 3073)
    with pytest.raises(DataError, match=r"folder .* is not the official cifar10: 1 of its 6 .*test_batch\.bin"):
        download(Source("cifar10", folder=tmp_path / "copy", by_files=True), tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


@pytest.mark.parametrize("damage", ["crc", "tail", "middle"])
def test_a_damaged_gzip_is_reported_corrupt_without_any_checksum(archive, tmp_path, damage):
    """No md5/sha256 configured: the structural check still reads the gzip stream to its end (CRC-32, length)."""
    from ran.data.prepare import prepare

    path, data = archive
    if damage == "crc":
        bad = data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]  # the stored CRC-32 of the trailer
    elif damage == "tail":
        bad = data[:-4]  # the length field cut off
    else:
        middle = len(data) // 2
        bad = data[:middle] + bytes(b ^ 0x5A for b in data[middle:middle + 64]) + data[middle + 64:]
    source = tmp_path / "damaged.tar.gz"
    source.write_bytes(bad)
    with pytest.raises(DataError, match="truncated or corrupt"):
        download(Source("cifar10", url=source.as_uri()), tmp_path / "a.tar.gz", **FAST)
    _no_leftovers(tmp_path / "a.tar.gz")
    with pytest.raises(DataError, match="truncated or corrupt"):
        prepare(source, "cifar10", tmp_path / "prepared")


def test_a_second_download_to_the_same_output_waits_for_the_first(archive, tmp_path):
    """Two processes, one output: the second waits on the lock (saying so) and then finds the verified archive."""
    import fcntl
    import subprocess
    import sys
    import time

    path, data = archive
    out = tmp_path / "archives" / "cifar10-binary.tar.gz"
    out.parent.mkdir()
    command = [sys.executable, "-m", "ran.cli", "download", "--dataset", "cifar10", "--url", path.as_uri(),
               "--sha256", sha256(data), "--out", str(out)]
    with open(out.with_name(f".{out.name}.lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the first download, still running
        second = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert second.poll() is None, "the second download must wait while the first holds the output"
        assert not out.exists()
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0 and "another `ran download` is writing" in err
    assert out.read_bytes() == data and not out.with_name(out.name + ".part").exists()


def test_a_synthetic_profile_downloads_the_archive_it_writes(tmp_path, params):
    """`ran download --profile smoke` writes the synthetic archive from params.yaml and takes it through the same
    file:// fetch and sha256 check as a real download; nothing is left beside the output."""
    from ran.data.download import main as download_main
    from ran.data.prepare import prepare

    params_path = tmp_path / "params.yaml"
    params_path.write_text(json.dumps(params))  # JSON is YAML
    out = tmp_path / "archives" / "cifar10-binary.tar.gz"
    assert download_main(["--params", str(params_path), "--profile", "smoke", "--dataset", "cifar10",
                          "--out", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    manifest = prepare(out, "cifar10", tmp_path / "prepared", expect="synthetic")
    assert manifest["splits"]["train"]["count"] == 10 * params["synthetic"]["train_per_class"]
