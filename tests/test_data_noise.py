"""Label noise (Eq. 7): Q's shape, realised statistics, determinism by (level, seed), file naming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ran.data.noise import (
    corrupt_labels,
    load_noisy_labels,
    noise_matrix,
    noisy_labels_path,
    transition_counts,
    write_noisy_labels,
)

CLEAN = np.repeat(np.arange(10), 5000)  # 50k balanced labels, like CIFAR-10's training set


def test_noise_matrix_is_eq7():
    q = noise_matrix(0.3, 10)
    assert np.allclose(np.diag(q), 0.7)
    assert np.allclose(q[~np.eye(10, dtype=bool)], 0.3 / 9)
    assert np.allclose(q.sum(axis=1), 1.0)
    assert np.array_equal(noise_matrix(0.0, 4), np.eye(4))
    with pytest.raises(ValueError, match="1.0"):
        noise_matrix(1.0, 10)


@pytest.mark.parametrize("level", [0.1, 0.3, 0.5, 0.7])
def test_realised_statistics_match_q(level):
    noisy = corrupt_labels(CLEAN, level, seed=0, num_classes=10)
    assert noisy.dtype == np.int64 and noisy.min() >= 0 and noisy.max() <= 9
    assert abs(np.mean(noisy != CLEAN) - level) < 0.01  # ~5 standard errors on 50k labels
    empirical = transition_counts(CLEAN, noisy, 10) / 5000
    assert np.abs(empirical - noise_matrix(level, 10)).max() < 0.03  # every row follows Q, diagonal and off it
    moved = noisy != CLEAN
    offsets = np.bincount((noisy[moved] - CLEAN[moved]) % 10, minlength=10)
    assert offsets[0] == 0  # a moved label never lands on its own class
    expected = moved.sum() / 9  # ... and lands on each of the other 9 classes equally often:
    chi_square = ((offsets[1:] - expected) ** 2 / expected).sum()
    assert chi_square < 32  # 8 degrees of freedom: P(chi2 > 32) < 1e-4 when uniform


def test_deterministic_by_level_and_seed():
    first = corrupt_labels(CLEAN, 0.3, seed=1, num_classes=10)
    assert np.array_equal(first, corrupt_labels(CLEAN, 0.3, seed=1, num_classes=10))
    assert not np.array_equal(first, corrupt_labels(CLEAN, 0.3, seed=2, num_classes=10))
    # Same seed, other level: an independent draw, not the same random numbers with another threshold.
    at_05 = corrupt_labels(CLEAN, 0.5, seed=1, num_classes=10)
    assert np.mean((first != CLEAN) & (at_05 != CLEAN)) < 0.3 * 0.5 + 0.02


def test_paths_are_stable():
    assert noisy_labels_path("d", 0.3, 0).as_posix() == "d/seed0/noise0.3_seed0.npz"  # a folder per seed
    assert noisy_labels_path("d", 0.1 + 0.2, 4).name == "noise0.3_seed4.npz"  # float noise in the level
    assert noisy_labels_path("d", 0.05, 1).name == "noise0.05_seed1.npz"


def test_write_and_load(tmp_path):
    summary = write_noisy_labels(CLEAN[::50], 0.5, 3, 10, tmp_path, "cifar10")
    labels = load_noisy_labels(tmp_path, 0.5, 3)
    assert np.array_equal(labels, corrupt_labels(CLEAN[::50], 0.5, 3, 10))
    on_disk = json.loads(noisy_labels_path(tmp_path, 0.5, 3).with_suffix(".json").read_text())
    assert on_disk == summary
    assert on_disk["nominal_level"] == 0.5 and on_disk["seed"] == 3
    assert on_disk["realised_fraction"] == np.mean(labels != CLEAN[::50])
    assert np.array(on_disk["transition_counts"]).sum() == 1000
