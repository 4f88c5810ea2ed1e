"""`ran prepare`: record layout (label, then R, G, B planes row-major), counts, balance and the manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from data_helpers import tar_gz
from ran.data import DataError
from ran.data.archive import write_deterministic_targz
from ran.data.extract import scan_archive
from ran.data.layout import LAYOUTS, get_layout
from ran.data.prepare import load_manifest, load_split, parse_records, prepare
from ran.data.prepare import main as prepare_main
from ran.data.synthetic import SYNTHETIC_HEADER, encode_records, synthetic_members, write_synthetic_archive

PIXELS = np.arange(1024)


def _record(labels: list[int], red_offset: int) -> bytes:
    """One record built byte by byte: label byte(s), then 1024 R, 1024 G, 1024 B values (row-major 32x32)."""
    red = (PIXELS + red_offset) % 256
    green = (PIXELS * 7) % 256
    blue = 255 - PIXELS % 256
    return bytes(labels) + bytes(red.tolist()) + bytes(green.tolist()) + bytes(blue.tolist())


def _check_pixels(image: np.ndarray, red_offset: int) -> None:
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    for row, col in [(0, 0), (0, 1), (1, 0), (5, 17), (31, 31)]:
        index = row * 32 + col  # row-major within each plane
        assert image[row, col].tolist() == [(index + red_offset) % 256, index * 7 % 256, 255 - index % 256]


def test_parse_cifar10_records():
    data = _record([7], red_offset=0) + _record([2], red_offset=100)
    parsed = parse_records(data, get_layout("cifar10"))
    assert parsed["labels"].tolist() == [7, 2] and parsed["labels"].dtype == np.int64
    assert set(parsed) == {"images", "labels"}
    _check_pixels(parsed["images"][0], 0)
    _check_pixels(parsed["images"][1], 100)


def test_parse_cifar100_records_coarse_byte_first():
    data = _record([3, 41], red_offset=5) + _record([19, 99], red_offset=9)
    parsed = parse_records(data, get_layout("cifar100"))
    assert parsed["labels"].tolist() == [41, 99]  # `labels` are the fine labels (second byte)
    assert parsed["coarse_labels"].tolist() == [3, 19]
    _check_pixels(parsed["images"][0], 5)
    _check_pixels(parsed["images"][1], 9)


def test_encode_is_the_inverse_of_parse():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    coarse, fine = np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])
    parsed = parse_records(encode_records(images, coarse, fine), get_layout("cifar100"))
    np.testing.assert_array_equal(parsed["images"], images)
    assert parsed["labels"].tolist() == fine.tolist() and parsed["coarse_labels"].tolist() == coarse.tolist()


def test_partial_record_is_an_error():
    with pytest.raises(DataError, match="not a whole number of 3073-byte"):
        parse_records(_record([1], 0)[:-1], get_layout("cifar10"), "x.bin")


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_prepare_synthetic_archive_and_manifest(tmp_path, dataset):
    archive = tmp_path / f"{dataset}.tar.gz"
    write_synthetic_archive(archive, dataset, train_per_class=2, test_per_class=1, seed=5)
    members = synthetic_members(dataset, 2, 1, seed=5)
    prepare(archive, dataset, tmp_path / "prepared")
    layout = get_layout(dataset)
    manifest = load_manifest(tmp_path / "prepared")
    assert manifest == json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert manifest["dataset"] == dataset and manifest["synthetic"] is True
    assert manifest["class_names"] == list(layout.class_names) and manifest["num_classes"] == layout.num_classes
    for split, per_class in (("train", 2), ("test", 1)):
        images, labels = load_split(tmp_path / "prepared", split)
        assert images.shape == (per_class * layout.num_classes, 32, 32, 3) and labels.dtype == np.int64
        assert manifest["splits"][split]["count"] == len(labels)
        assert manifest["splits"][split]["per_class"] == [per_class] * layout.num_classes
    assert manifest["source_sha256"] == {
        layout.member(file): hashlib.sha256(members[layout.member(file)]).hexdigest()
        for file in (*layout.train_files, *layout.test_files)
    }
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir()) == ["manifest.json", "test.npz", "train.npz"]
    if dataset == "cifar100":
        coarse = np.load(tmp_path / "prepared" / "train.npz")["coarse_labels"]
        _, fine = load_split(tmp_path / "prepared", "train")
        assert (coarse == np.array(manifest["fine_to_coarse"])[fine]).all()
        assert manifest["coarse_class_names"][manifest["fine_to_coarse"][0]] == "fruit_and_vegetables"  # apple
        assert manifest["splits"]["train"]["coarse_per_class"] == [10] * 20


def _cifar10_archive(path, labels: list[int], synthetic: bool) -> None:
    layout = get_layout("cifar10")
    images = np.zeros((len(labels), 32, 32, 3), dtype=np.uint8)
    members = {layout.member(file): encode_records(images, np.array(labels)) for file in layout.train_files}
    members[layout.member("test_batch.bin")] = encode_records(images, np.array(labels))
    members[layout.member(layout.names_file)] = "\n".join(layout.class_names).encode() + b"\n\n"
    write_deterministic_targz(path, members, pax_headers={SYNTHETIC_HEADER: "{}"} if synthetic else None)


def test_official_counts_are_required_without_the_synthetic_mark(tmp_path):
    _cifar10_archive(tmp_path / "small.tar.gz", list(range(10)), synthetic=False)
    with pytest.raises(DataError, match="expected the official 50000"):
        prepare(tmp_path / "small.tar.gz", "cifar10", tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unbalanced_classes_are_an_error(tmp_path):
    _cifar10_archive(tmp_path / "skewed.tar.gz", [0, 0, *range(1, 10)], synthetic=True)
    with pytest.raises(DataError, match="not balanced"):
        prepare(tmp_path / "skewed.tar.gz", "cifar10", tmp_path / "out")


def test_corrupt_archive_is_a_clear_error(tmp_path):
    (tmp_path / "bad.tar.gz").write_bytes(tar_gz({"a": b"b"})[:40])
    with pytest.raises(DataError, match="truncated or corrupt"):
        prepare(tmp_path / "bad.tar.gz", "cifar10", tmp_path / "out")
    with pytest.raises(DataError, match="not found"):
        prepare(tmp_path / "missing.tar.gz", "cifar10", tmp_path / "out")


def test_the_profile_decides_official_or_synthetic_whatever_the_header_says(tmp_path):
    _cifar10_archive(tmp_path / "synth.tar.gz", list(range(10)), synthetic=True)
    with pytest.raises(DataError, match="is a synthetic archive written by `ran synth`, but the profile trains on "
                                        "official data"):
        prepare(tmp_path / "synth.tar.gz", "cifar10", tmp_path / "out", expect="official")
    _cifar10_archive(tmp_path / "plain.tar.gz", list(range(10)), synthetic=False)
    with pytest.raises(DataError, match="is not a synthetic archive, but the profile trains on synthetic"):
        prepare(tmp_path / "plain.tar.gz", "cifar10", tmp_path / "out", expect="synthetic")
    assert prepare(tmp_path / "synth.tar.gz", "cifar10", tmp_path / "ok", expect="synthetic")["synthetic"]


def test_official_data_must_be_the_official_record_files(tmp_path, monkeypatch):
    """With the official counts and hashes made those of a small archive, its files pass and an altered one fails."""
    layout = get_layout("cifar10")
    _cifar10_archive(tmp_path / "official.tar.gz", list(range(10)), synthetic=False)
    digests = {}
    scan_archive(tmp_path / "official.tar.gz", digests=digests)
    files = tuple((file, digests[layout.member(file)]) for file in (*layout.train_files, *layout.test_files))
    monkeypatch.setitem(LAYOUTS, "cifar10", replace(layout, official_counts=(("train", 50), ("test", 10)),
                                                    official_sha256=files))
    manifest = prepare(tmp_path / "official.tar.gz", "cifar10", tmp_path / "out", expect="official")
    assert manifest["verified"] == "all 6 record files match the official per-file sha256"
    assert load_manifest(tmp_path / "out")["verified"] == manifest["verified"]
    _cifar10_archive(tmp_path / "other.tar.gz", [1, 0, *range(2, 10)], synthetic=False)  # same counts, other bytes
    with pytest.raises(DataError, match=r"record files \[.*data_batch_1\.bin.*\] differ from the official cifar10"):
        prepare(tmp_path / "other.tar.gz", "cifar10", tmp_path / "out2", expect="official")


def test_a_refused_archive_leaves_no_output_folder(tmp_path):
    _cifar10_archive(tmp_path / "small.tar.gz", list(range(10)), synthetic=False)
    out = tmp_path / "prepared" / "cifar10"
    with pytest.raises(SystemExit) as exit_info:
        prepare_main(["--dataset", "cifar10", "--archive", str(tmp_path / "small.tar.gz"), "--out", str(out)])
    assert exit_info.value.code == 1 and not out.exists()
