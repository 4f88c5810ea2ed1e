"""Variants as data (Table 6, Sec. 4.1 "36m + 20") and the one factory that builds them for CIFAR.

CIFAR layout (decision 1): a 16-channel 3x3 stem at 32x32; three stages at 32, 16 and 8 px with unit outputs
64, 128 and 256; each stage opens with residual unit(s) (stride 2 and projection where resolution or width changes),
then its attention modules; after the last stage 3 more units, BN-ReLU, global average pooling and a dense layer
giving logits. Pre-activation ResNet-164 is the same skeleton with 18 units per stage and no modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from ran.models.attention import ATTENTION_ACTIVATIONS, ATTENTION_LEARNING
from ran.models.blocks import batch_norm, conv2d, l2_penalty
from ran.models.checks import check_choice, check_int, check_weight_decay
from ran.models.module import MASK_TYPES, AttentionModule
from ran.models.residual import ResidualUnit

STEM_FILTERS = 16
STAGE_FILTERS = (64, 128, 256)
STAGE_STRIDES = (1, 2, 2)
DEFAULT_ATTENTION = {"attention": "mixed", "learning": "ARL", "mask": "encoder_decoder"}


@dataclass(frozen=True)
class Variant:
    """One network: `m` attention modules per stage with `(p, t, r)`; `paper_params_m` from Table 6 (millions)."""

    depth: int
    modules_per_stage: int
    p: int = 1
    t: int = 2
    r: int = 1
    units_per_stage: int = 1  # residual units opening each stage
    final_units: int = 3  # residual units after the last stage
    paper_params_m: float | None = None

    @property
    def expected_depth(self) -> int:
        """Weight layers on the trunk path: stem + 3 per unit + 3 per unit of each module's trunk + classifier."""
        units = len(STAGE_FILTERS) * (self.units_per_stage + self.modules_per_stage * (2 * self.p + self.t))
        return 1 + 3 * (units + self.final_units) + 1


VARIANTS: dict[str, Variant] = {
    "attention56": Variant(56, 1),
    "attention92": Variant(92, 2, paper_params_m=1.9),
    "attention128": Variant(128, 3),
    "attention164": Variant(164, 4),
    "attention236": Variant(236, 6, paper_params_m=5.1),
    "attention452": Variant(452, 6, p=2, t=4, r=3, paper_params_m=8.6),
    "resnet164": Variant(164, 0, p=0, t=0, r=0, units_per_stage=18, final_units=0, paper_params_m=1.7),
}


def mask_poolings(input_size: int) -> list[int]:
    """Poolings per stage so the smallest mask map equals the smallest trunk map (Sec. 3.2; decision 2).

    For CIFAR (stages at 32, 16, 8 px) this is [2, 1, 0]; for the paper's ImageNet stages (56, 28, 14 px above a 7 px
    stage) the same rule gives its 3, 2, 1.
    """
    sizes = [input_size // math.prod(STAGE_STRIDES[: index + 1]) for index in range(len(STAGE_STRIDES))]
    return [int(math.log2(size // sizes[-1])) for size in sizes]


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    # Each stage's mask pools its map down to the last stage's size, so sizes must divide by the total stride.
    factor = math.prod(STAGE_STRIDES)
    if (len(input_shape) != 3 or any(not isinstance(d, int) or d < 1 for d in input_shape)
            or input_shape[0] % factor or input_shape[1] % factor):
        raise ValueError(f"input_shape must be (height, width, channels) with height and width multiples of {factor}; "
                         f"received {input_shape!r}")
    return tuple(input_shape)


def build_network(network: str, num_classes: int, attention: str | None = None, learning: str | None = None,
                  mask: str | None = None, weight_decay: float = 1e-4, input_shape=(32, 32, 3),
                  name: str | None = None) -> keras.Model:
    """Build a CIFAR network of `VARIANTS` taking mean-subtracted float32 NHWC images and returning logits.

    For attention networks `attention` (mixed / channel / spatial), `learning` (ARL / NAL) and `mask`
    (encoder_decoder / local_conv) default to the paper's mixed, ARL, encoder_decoder; for resnet164 they must be None.
    `weight_decay` is SGD's decay coefficient (paper 1e-4), applied to convolution and dense kernels as the L2 loss
    `0.5 * weight_decay * ||w||^2` (see `blocks.l2_penalty`). Logits are float32 under any dtype policy.
    """
    variant = VARIANTS[check_choice("network", network, VARIANTS)]
    num_classes = check_int("num_classes", num_classes, 2)
    weight_decay = check_weight_decay(weight_decay)
    input_shape = _check_input_shape(tuple(input_shape))
    choices = {"attention": attention, "learning": learning, "mask": mask}
    if variant.modules_per_stage == 0:
        for key, value in choices.items():
            if value is not None:
                raise ValueError(f"{key} must be None for {network} (no attention modules); received {value!r}")
    else:
        allowed = {"attention": ATTENTION_ACTIVATIONS, "learning": ATTENTION_LEARNING, "mask": MASK_TYPES}
        choices = {key: check_choice(key, DEFAULT_ATTENTION[key] if value is None else value, allowed[key])
                   for key, value in choices.items()}

    images = keras.Input(input_shape, name="images")
    x = conv2d(STEM_FILTERS, 3, weight_decay, name="stem_conv")(images)  # (B, 32, 32, 16)
    poolings = mask_poolings(input_shape[0])
    for stage, (filters, stride) in enumerate(zip(STAGE_FILTERS, STAGE_STRIDES, strict=True), start=1):
        for unit in range(variant.units_per_stage):
            x = ResidualUnit(filters, strides=stride if unit == 0 else 1, weight_decay=weight_decay,
                             name=f"stage{stage}_unit{unit + 1}")(x)  # (B, 32 / 2^(stage-1), .., filters)
        for module in range(variant.modules_per_stage):
            x = AttentionModule(variant.p, variant.t, variant.r, poolings[stage - 1], weight_decay=weight_decay,
                                name=f"stage{stage}_module{module + 1}", **choices)(x)
    for unit in range(variant.final_units):
        x = ResidualUnit(STAGE_FILTERS[-1], weight_decay=weight_decay, name=f"final_unit{unit + 1}")(x)
    x = batch_norm("final_bn")(x)
    x = keras.layers.ReLU(name="final_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)  # (B, 256)
    logits = keras.layers.Dense(num_classes, kernel_initializer="he_normal",
                                kernel_regularizer=l2_penalty(weight_decay), dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name=name or network)
