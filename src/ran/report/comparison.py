"""The one comparison with the paper: which profile follows its protocol, how far a result is from its number,
and the verdict; every table and the recorded view use these."""

from __future__ import annotations

from ran.config import uses_fast_recipe

REFERENCE_PROFILE = "paper"  # the profile that follows the paper's protocol (Sec. 4.1)
PROTOCOL_KEYS = ("data", "iterations", "batch_size", "base_lr", "lr_decay_at", "lr_decay_factor", "momentum",
                 "nesterov", "weight_decay", "pad", "flip")
TOLERANCE_PP = 1.0  # |ours - paper| <= this many percentage points of top-1 error counts as "matches"
FAST_RECIPE = "fast recipe, not the paper's protocol"


def protocol_gap(training: dict, reference: dict) -> list[str]:
    """How a training configuration departs from the paper's protocol (empty: it follows it); a profile using the
    fast recipe (docs/recipe.md) says so first."""
    gaps = [FAST_RECIPE] if uses_fast_recipe(training) else []
    for key in PROTOCOL_KEYS:
        if training.get(key) != reference.get(key):
            if key == "iterations":
                gaps.append(f"{training.get(key)} of {reference.get(key)} iterations")
            else:
                gaps.append(f"{key} {training.get(key)!r} (paper {reference.get(key)!r})")
    return gaps


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return mean, std


def verdict(diff: float) -> str:
    # rounded so that float noise (6.52 - 5.52 = 1.0000000000000009) cannot flip a boundary case
    return "matches" if abs(round(diff, 6)) <= TOLERANCE_PP else "differs"
