"""The training configuration of one profile as a typed, frozen object, built once from its resolved dict.

Keys absent from params.yaml take the paper's protocol (Sec. 4.1): the fast recipe's keys (docs/recipe.md) are
optional, so the `paper`, `quick` and `cpu` profiles resolve to the same dict, and so the same run identity, as
before the recipe existed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras

from ran.config import RECIPE_DEFAULTS, uses_fast_recipe
from ran.train.schedule import StepDecay, Triangular, decay_boundaries


@dataclass(frozen=True)
class TrainingConfig:
    """What `ran train` needs of a resolved profile; `identity` is the dict it came from (checkpoints, train.json)."""

    iterations: int
    batch_size: int
    base_lr: float
    lr_decay_at: tuple[float, ...]
    lr_decay_factor: float
    momentum: float
    nesterov: bool
    weight_decay: float
    pad: int
    flip: bool
    mixed_precision: str
    jit: object
    log_every: int
    checkpoint_every: int
    run_eagerly: bool = False
    schedule: str = "step"
    warmup: float = 0.0
    warmup_from: float = 0.1
    label_smoothing: float = 0.0
    ema: float = 0.0
    ema_bn_batches: int = 100
    validation: int = 0
    identity: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, training: dict) -> TrainingConfig:
        names = {field.name for field in dataclasses.fields(cls)} - {"identity"}
        values = {**RECIPE_DEFAULTS, **{key: value for key, value in training.items() if key in names}}
        values["lr_decay_at"] = tuple(values["lr_decay_at"])
        required = {field.name for field in dataclasses.fields(cls) if field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(values))
        if missing:
            raise ValueError(f"the training configuration lacks {missing}: resolve it with ran.config.resolve_profile")
        return cls(**values, identity=dict(training))

    def learning_rate(self) -> keras.optimizers.schedules.LearningRateSchedule:
        """The profile's schedule; `base_lr` is the step schedule's first rate and the triangular one's peak."""
        if self.schedule == "triangular":
            return Triangular(self.base_lr, round(self.warmup * self.iterations), self.iterations, self.warmup_from)
        if self.schedule == "step":
            return StepDecay(self.base_lr, decay_boundaries(self.iterations, list(self.lr_decay_at)),
                             self.lr_decay_factor)
        raise ValueError(f"schedule must be step or triangular, got {self.schedule!r}")

    @property
    def is_paper_protocol(self) -> bool:
        """True when no recipe key departs from the paper's protocol."""
        return not uses_fast_recipe(dataclasses.asdict(self))
