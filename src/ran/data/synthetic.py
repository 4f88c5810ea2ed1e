"""`ran synth`: a small synthetic CIFAR archive in exactly the official binary layout (smoke profile, tests).

Each class gets a mean colour and a coarse 4x4 colour pattern; every image is its class's template plus a random
brightness shift and per-pixel noise. The mean colour survives crops and flips, so a tiny network beats chance within
a few steps, while the noise keeps the task from being trivial. Bytes are a pure function of the arguments (seeded
numpy generator, sorted members, fixed tar and gzip times); a `.sha256` sidecar is written beside the archive.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ran.data.archive import write_deterministic_targz, write_sidecar
from ran.data.layout import (
    CIFAR100_COARSE_CLASSES,
    CIFAR100_SUPERCLASSES,
    IMAGE_BYTES,
    IMAGE_SIZE,
    LAYOUTS,
    get_layout,
)

SYNTHETIC_HEADER = "RAN.synthetic"  # PAX global header that marks an archive as synthetic (read by prepare)
PATTERN_CELLS = 4  # the class pattern is a 4x4 grid of 8x8-pixel cells


def fine_to_coarse() -> np.ndarray:
    """CIFAR-100 fine label -> coarse label, from the official superclass table."""
    fine_names = get_layout("cifar100").class_names
    lookup = {fine: CIFAR100_COARSE_CLASSES.index(coarse) for coarse, fines in CIFAR100_SUPERCLASSES.items()
              for fine in fines}
    return np.array([lookup[name] for name in fine_names], dtype=np.uint8)


def class_templates(rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """(K, 32, 32, 3) float templates: a mean colour plus a coarse colour pattern per class."""
    colours = rng.uniform(40, 215, size=(num_classes, 1, 1, 3))
    pattern = rng.normal(0, 30, size=(num_classes, PATTERN_CELLS, PATTERN_CELLS, 3))
    cell = IMAGE_SIZE // PATTERN_CELLS
    return colours + pattern.repeat(cell, axis=1).repeat(cell, axis=2)


def synthetic_split(rng: np.random.Generator, templates: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` noisy images of every class, shuffled: uint8 (N, 32, 32, 3) images and uint8 (N,) labels."""
    labels = rng.permutation(np.repeat(np.arange(len(templates), dtype=np.uint8), per_class))
    brightness = rng.normal(0, 12, size=(len(labels), 1, 1, 1))
    noise = rng.normal(0, 24, size=(len(labels), IMAGE_SIZE, IMAGE_SIZE, 3))
    images = np.clip(np.rint(templates[labels] + brightness + noise), 0, 255).astype(np.uint8)
    return images, labels


def encode_records(images: np.ndarray, *label_columns: np.ndarray) -> bytes:
    """Official records: label byte(s), then the R plane, G plane and B plane, each row-major."""
    planes = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), IMAGE_BYTES)  # (N, 3072)
    labels = np.stack(label_columns, axis=1).astype(np.uint8)  # (N, label_bytes)
    return np.concatenate([labels, planes], axis=1).tobytes()


def _names_file(names) -> bytes:
    return ("\n".join(names) + "\n").encode()


def synthetic_members(dataset: str, train_per_class: int, test_per_class: int, seed: int) -> dict[str, bytes]:
    """The archive members (official names) of a synthetic dataset."""
    for name, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    layout = get_layout(dataset)
    rng = np.random.default_rng(seed)
    templates = class_templates(rng, layout.num_classes)
    members = {layout.member(layout.names_file): _names_file(layout.class_names)}
    if dataset == "cifar100":
        members[layout.member(layout.coarse_names_file)] = _names_file(CIFAR100_COARSE_CLASSES)
    coarse_of = fine_to_coarse() if dataset == "cifar100" else None
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, labels = synthetic_split(rng, templates, per_class)
        files = layout.split_files(split)
        # CIFAR-10's five training batches share the shuffled images equally (10 * per_class is divisible by 5).
        for file, index in zip(files, np.array_split(np.arange(len(labels)), len(files)), strict=True):
            columns = (coarse_of[labels[index]], labels[index]) if coarse_of is not None else (labels[index],)
            members[layout.member(file)] = encode_records(images[index], *columns)
    return members


def write_synthetic_archive(path: str | Path, dataset: str, train_per_class: int, test_per_class: int,
                            seed: int) -> str:
    """Write the synthetic archive and its `.sha256` sidecar; return the archive's sha256."""
    members = synthetic_members(dataset, train_per_class, test_per_class, seed)
    marker = json.dumps({"dataset": dataset, "train_per_class": train_per_class, "test_per_class": test_per_class,
                         "seed": seed}, sort_keys=True)
    sha256 = write_deterministic_targz(path, members, pax_headers={SYNTHETIC_HEADER: marker}, compresslevel=9)
    write_sidecar(path, sha256)
    return sha256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran synth", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--dataset", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--out", required=True, help="archive to write (a PATH.sha256 sidecar is written beside it)")
    args = parser.parse_args(argv)
    from ran.config import ConfigError, load_params

    try:
        config = load_params(args.params)["synthetic"]
    except ConfigError as error:
        parser.exit(2, f"ran synth: {error}\n")
    sha256 = write_synthetic_archive(args.out, args.dataset, config["train_per_class"], config["test_per_class"],
                                     config["seed"])
    print(f"synth: wrote {args.out} (sha256 {sha256})")
    return 0
