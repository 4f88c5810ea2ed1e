"""`ran prepare`: parse CIFAR binary records into uint8 NHWC arrays plus a manifest (no unpickling, ever).

Outputs (docs/architecture.md, "File formats"): `train.npz` and `test.npz` with `images` uint8 (N, 32, 32, 3) and
`labels` int64 (N,) (CIFAR-100: fine labels, plus `coarse_labels`), and `manifest.json` with counts per split and
class, the sha256 of every source file and of each split's `.npz`, and the class names. The paper trains on all 50k
training images and tests on the 10k test images (Sec. 4.1), so those counts, with every class equally often, are
required of the official data; a synthetic archive (marked by `ran synth`) must be balanced too, with its counts
taken from the archive itself.

The three files are written into a staging folder beside `out` and swapped in whole, so a kill never leaves one
run's `train.npz` beside another's `test.npz` or manifest; `load_split` refuses a split whose sha256 is not the
manifest's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ran.atomic import atomic_path, write_bytes_atomic
from ran.data import DataError
from ran.data.archive import compact_json, sha256_file
from ran.data.extract import safe_extract
from ran.data.layout import CHANNELS, IMAGE_SIZE, LAYOUTS, SPLITS, CifarLayout, get_layout
from ran.data.skipped import archive_not_needed, folder_not_needed, mark_folder
from ran.data.synthetic import SYNTHETIC_HEADER

MANIFEST = "manifest.json"


def parse_records(data: bytes, layout: CifarLayout, source: str = "<bytes>") -> dict[str, np.ndarray]:
    """Decode a buffer of records: `images` uint8 (N, 32, 32, 3) NHWC RGB, `labels` int64 (N,), CIFAR-100 also
    `coarse_labels` int64 (N,). One reshape for the whole buffer, no loop over records."""
    if len(data) % layout.record_bytes:
        raise DataError(f"{source} holds {len(data)} bytes, not a whole number of {layout.record_bytes}-byte "
                        f"{layout.dataset} records; the file is truncated or belongs to the other dataset.")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, layout.record_bytes)  # (N, label_bytes + 3072)
    planes = records[:, layout.label_bytes:].reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)  # (N, 3, 32, 32)
    parsed = {
        "images": np.ascontiguousarray(planes.transpose(0, 2, 3, 1)),  # (N, 32, 32, 3)
        "labels": records[:, layout.label_bytes - 1].astype(np.int64),  # CIFAR-100: the fine label is the 2nd byte
    }
    if layout.coarse_names_file:
        parsed["coarse_labels"] = records[:, 0].astype(np.int64)
    return parsed


def read_names(path: Path) -> list[str]:
    """Class names, one per line (the official files end with blank lines, which are dropped)."""
    return [line.strip() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]


def _class_counts(labels: np.ndarray, num_classes: int, what: str, source: str) -> list[int]:
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{source}: {what} outside 0..{num_classes - 1} (found {labels.min()}..{labels.max()}); "
                        f"the file is corrupt or belongs to the other dataset.")
    counts = np.bincount(labels, minlength=num_classes)
    if len(labels) == 0 or counts.min() != counts.max():
        raise DataError(f"{source}: {what} are not balanced (per-class counts range {counts.min()}..{counts.max()} "
                        f"over {num_classes} classes); CIFAR has the same number of images in every class, so "
                        f"files are missing, truncated or mixed up. Download the archive again.")
    return counts.tolist()


def _channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and std on the 0-255 scale, via 256-bin histograms (no float copy of the data)."""
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(CHANNELS):
        histogram = np.bincount(images[..., channel].ravel(), minlength=256).astype(np.float64)
        mean = histogram @ values / histogram.sum()
        means.append(round(float(mean), 4))
        stds.append(round(float(np.sqrt(histogram @ (values - mean) ** 2 / histogram.sum())), 4))
    return means, stds


def prepare(archive: str | Path, dataset: str, out: str | Path, expect: str | None = None) -> dict:
    """Extract, parse and check one archive; write `train.npz`, `test.npz` and `manifest.json` into `out`.

    `expect` ('official' or 'synthetic', from the profile's `data`) refuses the other kind: a synthetic archive
    never passes for official data, whatever its header says.
    """
    layout = get_layout(dataset)
    archive, out = Path(archive), Path(out)
    out = out.resolve() if out.is_symlink() else out  # swap the folder the link points at, not the link
    out.parent.mkdir(parents=True, exist_ok=True)
    source_sha256, splits, arrays = {}, {}, {}
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-extract-") as temp:
        headers = safe_extract(archive, temp, layout.members())
        synthetic = SYNTHETIC_HEADER in headers
        if expect is not None and expect != ("synthetic" if synthetic else "official"):
            kind = "a synthetic archive written by `ran synth`" if synthetic else "not a synthetic archive"
            raise DataError(f"{archive} is {kind}, but the profile trains on {expect} data; point the profile at "
                            f"the right archive (profiles.<profile>.data and datasets.{dataset} in params.yaml).")
        for split in SPLITS:
            parts = []
            for file in layout.split_files(split):
                member = layout.member(file)
                data = (Path(temp) / member).read_bytes()
                source_sha256[member] = hashlib.sha256(data).hexdigest()
                parts.append(parse_records(data, layout, f"{archive}:{member}"))
            arrays[split] = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        class_names = read_names(Path(temp) / layout.member(layout.names_file))
        coarse_names = read_names(Path(temp) / layout.member(layout.coarse_names_file)) \
            if layout.coarse_names_file else None
    if len(class_names) != layout.num_classes:
        raise DataError(f"{archive}:{layout.member(layout.names_file)} lists {len(class_names)} class names, "
                        f"expected {layout.num_classes} for {dataset}; the archive is not the official one.")
    official = dict(layout.official_counts)
    for split in SPLITS:
        labels, count = arrays[split]["labels"], len(arrays[split]["labels"])
        where = f"{archive} ({split} split)"
        if not synthetic and count != official[split]:
            raise DataError(f"{where}: found {count} images, expected the official {official[split]}; the archive "
                            f"is incomplete or not the official {dataset} binary archive. Download it again (a "
                            f"synthetic archive is accepted with any size only if written by `ran synth`).")
        splits[split] = {"count": count, "per_class": _class_counts(labels, layout.num_classes, "labels", where),
                         "files": [layout.member(file) for file in layout.split_files(split)]}
        if coarse_names is not None:
            coarse = arrays[split]["coarse_labels"]
            splits[split]["coarse_per_class"] = _class_counts(coarse, len(coarse_names), "coarse labels", where)
    manifest = {
        "dataset": dataset,
        "synthetic": synthetic,
        "verified": _verification(source_sha256, layout, synthetic, archive),
        "archive": {"file": archive.name, "sha256": sha256_file(archive)},
        "image_format": "uint8 (N, 32, 32, 3) NHWC, RGB; labels int64",
        "num_classes": layout.num_classes,
        "class_names": class_names,
        "splits": splits,
        "source_sha256": source_sha256,
    }
    if coarse_names is not None:
        manifest["coarse_class_names"] = coarse_names
        manifest["fine_to_coarse"] = _fine_to_coarse(arrays["train"], len(class_names), archive)
    manifest["train_channel_mean"], manifest["train_channel_std"] = _channel_stats(arrays["train"]["images"])
    with _staged_folder(out) as staging:
        for split in SPLITS:
            _save_npz(staging / f"{split}.npz", arrays[split])
            splits[split]["npz_sha256"] = sha256_file(staging / f"{split}.npz")
        write_bytes_atomic(staging / MANIFEST, (compact_json(manifest) + "\n").encode())
    return manifest


@contextmanager
def _staged_folder(target: Path) -> Iterator[Path]:
    """An empty folder beside `target` that replaces `target` whole once the block succeeds (deleted on error).

    A kill leaves the old folder or the new one at `target`, never a mix; between the two renames of a swap it
    leaves neither, the old folder kept beside as a hidden `.NAME-old-*` (a rerun of `ran prepare` writes afresh).
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-staging-", dir=target.parent))
    try:
        yield staging
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes the folder private; outputs get the usual permissions
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
            os.rename(target, old)  # onto an empty folder: allowed, and atomic
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _verification(source_sha256: dict[str, str], layout: CifarLayout, synthetic: bool, archive: Path) -> str:
    """What this data was checked against, for the manifest; official data whose record files are known must match
    them byte for byte (counts and class balance are checked for every archive)."""
    if synthetic:
        return "synthetic archive written by `ran synth` (counts and class balance checked)"
    official = layout.official_member_sha256()
    if not official:
        return (f"counts and class balance checked; no official per-file sha256 is known for {layout.dataset}, so "
                f"the bytes are vouched for by the archive checksum `ran download` verified")
    wrong = sorted(name for name, digest in official.items() if source_sha256.get(name) != digest)
    if wrong:
        raise DataError(f"{archive}: record files {wrong} differ from the official {layout.dataset} files (sha256); "
                        f"this is not the official data. Download it again or point datasets.{layout.dataset}.local "
                        f"at the official files.")
    return f"all {len(official)} record files match the official per-file sha256"


def _fine_to_coarse(split: dict[str, np.ndarray], num_classes: int, archive: Path) -> list[int]:
    """The superclass of every fine class; each fine class must belong to exactly one superclass."""
    pairs = np.unique(np.stack([split["labels"], split["coarse_labels"]], axis=1), axis=0)
    if len(pairs) != num_classes:
        raise DataError(f"{archive}: fine and coarse labels are inconsistent ({len(pairs)} distinct pairs for "
                        f"{num_classes} fine classes); the archive is corrupt.")
    return pairs[:, 1].tolist()


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Uncompressed: CIFAR pixels barely compress, and loading stays a plain read.
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        np.savez(stream, **arrays)


def load_manifest(prepared_dir: str | Path) -> dict:
    path = Path(prepared_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} not found: run `ran prepare` to write the prepared dataset.")
    return json.loads(path.read_text())


def load_split(prepared_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` of a prepared split: uint8 (N, 32, 32, 3) and int64 (N,) (CIFAR-100: fine labels)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(prepared_dir) / f"{split}.npz"
    reason = folder_not_needed(prepared_dir)
    if reason is not None:
        raise DataError(f"{prepared_dir} holds no data: {reason}. Select a run that uses it in the profile.")
    if not path.is_file():
        raise DataError(f"{path} not found: run `ran prepare` to write the prepared dataset.")
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} cannot be read ({type(error).__name__}: {error}); it is truncated or corrupt: delete "
                        f"{prepared_dir} and run `ran prepare` again.") from error
    if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, CHANNELS) or \
            labels.shape != (len(images),):
        raise DataError(f"{path} has images {images.dtype} {images.shape} and labels {labels.shape}, expected uint8 "
                        f"(N, 32, 32, 3) and (N,); delete it and run `ran prepare` again.")
    _check_recorded(Path(prepared_dir), split)
    return images, labels.astype(np.int64, copy=False)


def _check_recorded(prepared_dir: Path, split: str) -> None:
    """Refuse a split file that is not the one its manifest describes (folders prepared before the manifest
    recorded `npz_sha256`, or with no manifest, pass unchecked)."""
    manifest, path = prepared_dir / MANIFEST, prepared_dir / f"{split}.npz"
    if not manifest.is_file():
        return
    try:
        recorded = json.loads(manifest.read_text())["splits"][split].get("npz_sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{manifest} cannot be read ({type(error).__name__}: {error}); delete {prepared_dir} and run "
                        f"`ran prepare` again.") from error
    actual = sha256_file(path) if recorded else None
    if recorded and actual != recorded:
        raise DataError(f"{path} is not the file {manifest} describes (sha256 {actual[:12]}..., recorded "
                        f"{recorded[:12]}...): the folder mixes files of two `ran prepare` runs; delete "
                        f"{prepared_dir} and run `ran prepare` again.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--archive", required=True, help="verified archive written by `ran download`")
    parser.add_argument("--out", required=True, help="folder for train.npz, test.npz and manifest.json")
    parser.add_argument("--params", help="params file: with --profile, the kind of data the profile expects")
    parser.add_argument("--profile", help="profile whose `data` (official or synthetic) the archive must be")
    args = parser.parse_args(argv)
    expect = None
    if args.params:
        from ran.config import ConfigError, load_params, resolve_profile

        try:
            expect = resolve_profile(load_params(args.params), args.profile)["data"]
        except ConfigError as error:
            parser.exit(1, f"ran prepare: {error}\n")
    start = time.perf_counter()
    reason = archive_not_needed(args.archive)
    if reason is not None:
        mark_folder(args.out, reason)
        print(f"prepare: {args.dataset}: nothing to prepare ({reason})", file=sys.stderr)
        return 0
    try:
        manifest = prepare(args.archive, args.dataset, args.out, expect)  # a refusal leaves `out` as it was
    except DataError as error:
        parser.exit(1, f"ran prepare: {error}\n")
    counts = ", ".join(f"{split} {manifest['splits'][split]['count']}" for split in SPLITS)
    print(f"prepare: {args.dataset} ({counts}{', synthetic' if manifest['synthetic'] else ''}) -> {args.out} "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0
