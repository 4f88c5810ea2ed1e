"""Pre-activation bottleneck residual units and stacks of them: the building block of every branch (Sec. 3)."""

from __future__ import annotations

import keras
from keras import ops

from ran.models.blocks import batch_norm, build_sequence, conv2d
from ran.models.checks import check_choice, check_int, check_weight_decay

EXPANSION = 4  # bottleneck: output channels = 4 x the width of the 3x3 convolution


@keras.saving.register_keras_serializable(package="ran")
class ResidualUnit(keras.layers.Layer):
    """Pre-activation bottleneck unit: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 with 4x expansion, plus a shortcut.

    The paper's residual unit (Sec. 3, "pre-activation ResNet-164" units, He et al. 2016). The shortcut is the
    identity unless the stride or the channel count changes; then it is a bias-free 1x1 projection of the
    pre-activated input (as in the pre-activation reference implementation). The stride sits on the 3x3 convolution.
    """

    def __init__(self, filters: int, strides: int = 1, weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int("filters", filters, EXPANSION)
        if filters % EXPANSION:
            raise ValueError(f"filters must be a multiple of {EXPANSION}; received {filters!r}")
        self.strides = check_choice("strides", strides, (1, 2))
        self.weight_decay = check_weight_decay(weight_decay)
        width = filters // EXPANSION
        self.bn1 = batch_norm("bn1")
        self.conv1 = conv2d(width, 1, self.weight_decay, name="conv1")
        self.bn2 = batch_norm("bn2")
        self.conv2 = conv2d(width, 3, self.weight_decay, strides=strides, name="conv2")
        self.bn3 = batch_norm("bn3")
        self.conv3 = conv2d(filters, 1, self.weight_decay, name="conv3")
        self.shortcut = None

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.shortcut = conv2d(self.filters, 1, self.weight_decay, strides=self.strides, name="shortcut")
            self.shortcut.build(input_shape)
        build_sequence([self.bn1, self.conv1, self.bn2, self.conv2, self.bn3, self.conv3], input_shape)

    def call(self, inputs, training=None):
        x = ops.relu(self.bn1(inputs, training=training))
        shortcut = inputs if self.shortcut is None else self.shortcut(x)  # (B, H/s, W/s, filters)
        x = self.conv1(x)  # (B, H, W, filters / 4)
        x = self.conv2(ops.relu(self.bn2(x, training=training)))  # (B, H/s, W/s, filters / 4)
        x = self.conv3(ops.relu(self.bn3(x, training=training)))  # (B, H/s, W/s, filters)
        return x + shortcut

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, -(-height // self.strides), -(-width // self.strides), self.filters)

    def children(self):
        """Every weight-holding sub-layer (for `forward_macs`)."""
        shortcut = [] if self.shortcut is None else [self.shortcut]
        return [self.bn1, self.conv1, self.bn2, self.conv2, self.bn3, self.conv3, *shortcut]

    def trunk_children(self):
        """The layers that count towards depth: the three convolutions (a projection shortcut does not)."""
        return [self.conv1, self.conv2, self.conv3]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "weight_decay": self.weight_decay}


@keras.saving.register_keras_serializable(package="ran")
class ResidualStack(keras.layers.Layer):
    """`num_units` residual units at the input's width and resolution, applied in sequence.

    Used wherever the paper stacks units: the `p` units before and after an attention module, the `r` / `2r` units
    of the soft-mask branch and the local-convolution mask (Sec. 3.2, Table 4).
    """

    def __init__(self, num_units: int, weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_units = check_int("num_units", num_units, 1)
        self.weight_decay = check_weight_decay(weight_decay)

    def build(self, input_shape):
        self.residual_units = [
            ResidualUnit(input_shape[-1], weight_decay=self.weight_decay, name=f"unit{index + 1}")
            for index in range(self.num_units)
        ]
        build_sequence(self.residual_units, input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for unit in self.residual_units:
            x = unit(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def children(self):
        return list(self.residual_units)

    def trunk_children(self):
        return list(self.residual_units)

    def get_config(self):
        return {**super().get_config(), "num_units": self.num_units, "weight_decay": self.weight_decay}


@keras.saving.register_keras_serializable(package="ran")
class TrunkBranch(ResidualStack):
    """The trunk branch of an attention module: `t` residual units doing the feature processing (Sec. 3, Fig. 2).

    Takes `t` as its argument; otherwise a `ResidualStack`.
    """

    def __init__(self, t: int, weight_decay: float = 0.0, **kwargs):
        super().__init__(check_int("t", t, 1), weight_decay=weight_decay, **kwargs)
        self.t = t

    def get_config(self):
        config = super().get_config()
        config.pop("num_units")
        return {**config, "t": self.t}
