"""The paper's step learning-rate schedule (Sec. 4.1): 0.1, divided by 10 at 64k and 96k of 160k iterations."""

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
