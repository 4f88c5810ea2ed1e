"""Training data in memory and its order: a fresh seeded permutation per pass, iterations as the unit (Sec. 4.1).

The order is a pure function of (seed, iteration), so a resumed run needs no data-loader state: iteration `s` reads
batch `s % steps_per_pass` of pass `s // steps_per_pass`. A pass holds `N // batch` whole batches; the `N % batch`
images left at the end of each pass's permutation are skipped (16 of 50,000 at batch 64, different ones each pass),
so no batch straddles two passes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def steps_per_pass(num_images: int, batch_size: int) -> int:
    if num_images < batch_size:
        raise ValueError(f"the training set has {num_images} images, fewer than one batch of {batch_size}")
    return num_images // batch_size


@lru_cache(maxsize=2)
def pass_permutation(seed: int, pass_index: int, num_images: int) -> np.ndarray:
    """The image order of one pass; its own stream per (seed, pass) so any pass can be rebuilt alone."""
    return np.random.default_rng([seed, pass_index]).permutation(num_images)


def batch_indices(seed: int, num_images: int, batch_size: int, start: int, stop: int) -> np.ndarray:
    """Image indices of iterations [start, stop), concatenated; the span must lie within one pass."""
    per_pass = steps_per_pass(num_images, batch_size)
    pass_index, first = divmod(start, per_pass)
    if stop - start < 1 or first + (stop - start) > per_pass:
        raise ValueError(f"iterations [{start}, {stop}) are empty or straddle a pass of {per_pass} iterations")
    order = pass_permutation(seed, pass_index, num_images)
    return order[first * batch_size:(first + stop - start) * batch_size]


AUGMENT_STREAM = 0x41554731  # "AUG1": keeps augmentation draws apart from the pass permutations' streams


def augmentation_draws(seed: int, start: int, stop: int, batch_size: int, pad: int, flip: bool):
    """Crop offsets (n, 2) int32 in [0, 2*pad] and flip flags (n,) int32 for iterations [start, stop), n = images.

    Iteration `s` draws from its own stream keyed by (seed, s), position by position, so any iteration's
    augmentation is rebuilt alone: a resumed run needs no random state and two runs are equal by construction.
    """
    offsets, flips = [], []
    for step in range(start, stop):
        rng = np.random.default_rng([seed, AUGMENT_STREAM, step])
        offsets.append(rng.integers(0, 2 * pad + 1, size=(batch_size, 2), dtype=np.int32))
        drawn = rng.random(batch_size) < 0.5
        flips.append((drawn if flip else np.zeros(batch_size, bool)).astype(np.int32))
    return np.concatenate(offsets), np.concatenate(flips)


def segment_ends(start: int, stop: int, *periods: int) -> list[int]:
    """Sorted iterations in (start, stop] where a segment of training ends: multiples of any period, and `stop`."""
    ends = {stop}
    for period in periods:
        ends.update(range((start // period + 1) * period, stop, period))
    return sorted(end for end in ends if start < end <= stop)


def mean_image(images: np.ndarray) -> np.ndarray:
    """Per-pixel mean (H, W, C) float32 of the training images, accumulated in float64."""
    return images.mean(axis=0, dtype=np.float64).astype(np.float32)


VALIDATION_STREAM = 0x56414C31  # "VAL1": one held-out set for every run and seed, apart from the training streams


def validation_split(labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), disjoint and sorted: `size` training images held out, as equal a share
    of each class as `size` allows (the first `size % classes` classes give one more), the same for every run."""
    labels = np.asarray(labels)
    if size <= 0:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    classes = np.unique(labels)
    if size >= len(labels):
        raise ValueError(f"validation: {size} held-out images leave none of the {len(labels)} to train on")
    rng = np.random.default_rng([VALIDATION_STREAM, size])
    share, extra = divmod(size, len(classes))
    held = []
    for position, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        wanted = share + (position < extra)
        if wanted > len(members):
            raise ValueError(f"validation: {size} needs {wanted} images of class {label}, which has {len(members)}")
        held.append(rng.choice(members, size=wanted, replace=False))
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), held), held
