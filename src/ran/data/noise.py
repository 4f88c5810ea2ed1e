"""`ran noise`: noisy training labels for Table 5, drawn from the paper's Eq. 7 transition matrix.

Q (K x K) has r on its diagonal and (1 - r) / (K - 1) everywhere else; a label y is replaced by a draw from row y of
Q, so it stays with probability r and otherwise moves to any other class with equal probability. The paper's noise
level is 1 - r. Corruption is drawn once per (level, seed) with numpy's default_rng seeded from both and saved as its
own artefact; the realised noise fraction is recorded beside the nominal one (decision 4).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ran.atomic import atomic_path, write_bytes_atomic
from ran.data import DataError
from ran.data.archive import compact_json

LEVEL_SCALE = 1_000_000  # the level enters the seed as an integer number of millionths


def noise_matrix(level: float, num_classes: int) -> np.ndarray:
    """Q of Eq. 7: r = 1 - level on the diagonal, (1 - r) / (K - 1) off it; every row sums to 1."""
    if not 0 <= level < 1:
        raise ValueError(f"noise level must be in [0, 1), got {level!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes!r}")
    keep = 1.0 - level
    matrix = np.full((num_classes, num_classes), level / (num_classes - 1))
    np.fill_diagonal(matrix, keep)
    return matrix


def level_tag(level: float) -> str:
    """The level as it appears in file names: shortest form, 6 significant digits (0.3 -> '0.3', 0.05 -> '0.05')."""
    return f"{float(level):g}"


def seed_folder(noisy_dir: str | Path, seed: int) -> Path:
    """`noisy_dir/seed{seed}`: one folder per seed, so that adding a seed writes a folder and rewrites none."""
    return Path(noisy_dir) / f"seed{int(seed)}"


def noisy_labels_path(noisy_dir: str | Path, level: float, seed: int) -> Path:
    """`noisy_dir/seed{seed}/noise{level}_seed{seed}.npz`, the one naming rule that `ran noise` and training share."""
    return seed_folder(noisy_dir, seed) / f"noise{level_tag(level)}_seed{int(seed)}.npz"


def noise_rng(level: float, seed: int) -> np.random.Generator:
    """A generator determined by (level, seed) together, so each pair has its own independent draw."""
    return np.random.default_rng([int(seed), round(float(level) * LEVEL_SCALE)])


def corrupt_labels(labels: np.ndarray, level: float, seed: int, num_classes: int) -> np.ndarray:
    """Replace each label by a draw from its row of Q (Eq. 7); deterministic given (level, seed)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    cumulative = noise_matrix(level, num_classes).cumsum(axis=1)  # (K, K)
    uniform = noise_rng(level, seed).random(len(labels))  # (N,)
    # Inverse-CDF sampling for all labels at once: the first class whose cumulative probability exceeds u.
    drawn = (uniform[:, None] >= cumulative[labels]).sum(axis=1)
    return np.minimum(drawn, num_classes - 1)  # guards the last bin against float rounding of the cumsum


def transition_counts(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts of clean label i turned into label j."""
    return np.bincount(clean * num_classes + noisy, minlength=num_classes**2).reshape(num_classes, num_classes)


def write_noisy_labels(clean: np.ndarray, level: float, seed: int, num_classes: int, noisy_dir: str | Path,
                       dataset: str = "") -> dict:
    """Write `noise{level}_seed{seed}.npz` (`labels`) and its `.json` summary; return the summary."""
    noisy = corrupt_labels(clean, level, seed, num_classes)
    path = noisy_labels_path(noisy_dir, level, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "dataset": dataset,
        "nominal_level": float(level),
        "seed": int(seed),
        "num_classes": num_classes,
        "num_labels": len(clean),
        "realised_fraction": float(np.mean(noisy != clean)) if len(clean) else 0.0,
        "transition_counts": transition_counts(np.asarray(clean, dtype=np.int64), noisy, num_classes).tolist(),
    }
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        np.savez(stream, labels=noisy)
    write_bytes_atomic(path.with_suffix(".json"), (compact_json(summary) + "\n").encode())
    return summary


def load_noisy_labels(noisy_dir: str | Path, level: float, seed: int) -> np.ndarray:
    """The int64 (N,) noisy training labels written by `ran noise` for (level, seed)."""
    path = noisy_labels_path(noisy_dir, level, seed)
    if not path.is_file():
        raise DataError(f"{path} not found: `ran noise` writes it for every level in label_noise.levels and every "
                        f"seed in seeds; add the level/seed to params.yaml and rerun it.")
    with np.load(path, allow_pickle=False) as data:
        return data["labels"].astype(np.int64, copy=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran noise", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--prepared", required=True, help="prepared dataset folder (train.npz, manifest.json)")
    parser.add_argument("--out", required=True, help="folder for seed{S}/noise{level}_seed{S}.npz and .json")
    parser.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: params.yaml `seeds`)")
    args = parser.parse_args(argv)
    from ran.config import ConfigError, load_params
    from ran.data.prepare import load_manifest, load_split
    from ran.data.skipped import folder_not_needed, mark_folder

    try:
        params = load_params(args.params)
    except ConfigError as error:
        parser.exit(1, f"ran noise: {error}\n")
    seeds = args.seeds or params["seeds"]
    reason = folder_not_needed(args.prepared)
    if reason is not None:
        for seed in seeds:
            mark_folder(seed_folder(args.out, seed), reason)
        print(f"noise: nothing to corrupt ({reason})", file=sys.stderr)
        return 0
    try:
        manifest = load_manifest(args.prepared)
        dataset = params["label_noise"]["dataset"]
        if manifest["dataset"] != dataset:
            raise DataError(f"{args.prepared} holds {manifest['dataset']}, but label_noise.dataset in "
                            f"{args.params} is {dataset}; pass --prepared for {dataset}.")
        _, clean = load_split(args.prepared, "train")
    except (ConfigError, DataError) as error:
        parser.exit(1, f"ran noise: {error}\n")
    for seed in seeds:
        for level in params["label_noise"]["levels"]:
            summary = write_noisy_labels(clean, level, seed, manifest["num_classes"], args.out, dataset)
            print(f"noise: level {level_tag(level)} seed {seed}: realised {summary['realised_fraction']:.4f} "
                  f"-> {noisy_labels_path(args.out, level, seed)}", file=sys.stderr)
    return 0
