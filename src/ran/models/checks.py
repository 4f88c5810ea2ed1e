"""Constructor-argument checks shared by every layer: a bad value raises ValueError quoting it and what is allowed."""

from __future__ import annotations


def check_choice(name: str, value, allowed) -> object:
    """Return `value` if it is one of `allowed`, else raise ValueError naming both."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}; received {value!r}")
    return value


def check_int(name: str, value, minimum: int) -> int:
    """Return `value` if it is an int >= `minimum` (bools are rejected), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; received {value!r}")
    return value


def check_weight_decay(value) -> float:
    """Return `value` as a float if it is a finite number >= 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ValueError(f"weight_decay must be a number >= 0; received {value!r}")
    return float(value)


def check_positive_float(name: str, value) -> float:
    """Return `value` as a float if it is a finite number > 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a number > 0; received {value!r}")
    return float(value)
