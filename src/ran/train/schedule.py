"""Learning-rate schedules: the paper's step decay (Sec. 4.1: 0.1, divided by 10 at 64k and 96k of 160k) and the
fast recipe's triangular warm-up and linear decay to zero (docs/recipe.md)."""

from __future__ import annotations

import keras
from keras import ops


def decay_boundaries(iterations: int, fractions: list[float]) -> list[int]:
    """Iterations at which the rate drops: the profile's fractions of its length (0.4, 0.6 -> 64k, 96k of 160k)."""
    if list(fractions) != sorted(fractions) or any(not 0 < fraction <= 1 for fraction in fractions):
        raise ValueError(f"lr_decay_at must be increasing fractions in (0, 1], got {fractions!r}")
    return [int(round(fraction * iterations)) for fraction in fractions]


@keras.saving.register_keras_serializable(package="ran")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`base_lr * factor ** (number of boundaries <= step)`, `step` being the 0-based iteration about to run.

    Keras passes the optimizer's count of completed updates, so iteration 64000 (the 64001st update) is the first
    at the lower rate, as in Caffe/Torch step policies.
    """

    def __init__(self, base_lr: float, boundaries: list[int], factor: float):
        self.base_lr = float(base_lr)
        self.boundaries = [int(b) for b in boundaries]
        self.factor = float(factor)

    def __call__(self, step):
        step = ops.cast(step, "int32")
        drops = sum((ops.cast(step >= boundary, "float32") for boundary in self.boundaries), ops.zeros((), "float32"))
        return self.base_lr * ops.power(self.factor, drops)

    def value_at(self, step: int) -> float:
        """The same rate as plain Python (logging, tests)."""
        return self.base_lr * self.factor ** sum(step >= boundary for boundary in self.boundaries)

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr, "boundaries": self.boundaries, "factor": self.factor}


@keras.saving.register_keras_serializable(package="ran")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """The fast recipe's rate (docs/recipe.md): linear warm-up from `start_fraction * peak` at step 0 to `peak` at
    step `warmup_steps`, then linear decay to 0 at step `total` (the end of the run, so the last update, step
    total - 1, uses peak / (total - warmup_steps))."""

    def __init__(self, peak: float, warmup_steps: int, total: int, start_fraction: float):
        if not 0 <= int(warmup_steps) < int(total):
            raise ValueError(f"warm-up must end before the run does: {warmup_steps} of {total} iterations")
        self.peak, self.warmup_steps, self.total = float(peak), int(warmup_steps), int(total)
        self.start_fraction = float(start_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = ops.cast(max(self.warmup_steps, 1), "float32")
        rising = self.start_fraction + (1.0 - self.start_fraction) * step / warm
        falling = (self.total - step) / float(self.total - self.warmup_steps)
        rate = ops.where(step < self.warmup_steps, rising, falling)
        return self.peak * ops.clip(rate, 0.0, 1.0)

    def value_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak * (self.start_fraction + (1.0 - self.start_fraction) * step / self.warmup_steps)
        return self.peak * min(max((self.total - step) / (self.total - self.warmup_steps), 0.0), 1.0)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total": self.total,
                "start_fraction": self.start_fraction}
