"""Soft-mask branches (Sec. 3.2, Fig. 3) and the local-convolution mask of Table 4."""

from __future__ import annotations

import keras
from keras import ops

from ran.models.attention import ATTENTION_ACTIVATIONS, attention_activation
from ran.models.blocks import batch_norm, build_sequence, conv2d
from ran.models.checks import check_choice, check_int, check_weight_decay
from ran.models.residual import ResidualStack, ResidualUnit

LOCAL_CONV_UNITS = 3  # Table 4: "three residual units of the same FLOPs"


@keras.saving.register_keras_serializable(package="ran")
class MaskHead(keras.layers.Layer):
    """End of every soft-mask branch (Sec. 3.2): BN-ReLU-1x1 conv, BN-ReLU-1x1 conv, then the attention activation.

    Both convolutions keep the channel count, so the mask M has the trunk's shape.
    """

    def __init__(self, attention: str = "mixed", weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.attention = check_choice("attention", attention, ATTENTION_ACTIVATIONS)
        self.weight_decay = check_weight_decay(weight_decay)
        self.bn1 = batch_norm("bn1")
        self.bn2 = batch_norm("bn2")
        self.activation = attention_activation(attention)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.conv1 = conv2d(channels, 1, self.weight_decay, name="conv1")
        self.conv2 = conv2d(channels, 1, self.weight_decay, name="conv2")
        build_sequence([self.bn1, self.conv1, self.bn2, self.conv2], input_shape)

    def call(self, inputs, training=None):
        x = self.conv1(ops.relu(self.bn1(inputs, training=training)))
        x = self.conv2(ops.relu(self.bn2(x, training=training)))
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def children(self):
        return [self.bn1, self.conv1, self.bn2, self.conv2]

    def get_config(self):
        return {**super().get_config(), "attention": self.attention, "weight_decay": self.weight_decay}


@keras.saving.register_keras_serializable(package="ran")
class SoftMaskBranch(keras.layers.Layer):
    """Encoder-decoder soft-mask branch (Sec. 3.2, Fig. 3) with `poolings` down-samplings.

    Bottom-up: `poolings` times a 3x3/2 max-pooling followed by `r` residual units (`2r` at the lowest resolution).
    Top-down: as many bilinear 2x up-samplings, each followed by `r` units. Every down-level except the lowest
    sends a skip connection (one residual unit) that is added right after the up-sampling back to its resolution.
    Then `MaskHead`. With `poolings = 0` (the stage whose trunk map is already the smallest, decision 2) the
    branch degenerates to its lowest level: `2r` units at the input resolution, no pooling, no up-sampling.
    """

    def __init__(self, r: int = 1, poolings: int = 1, attention: str = "mixed", weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.r = check_int("r", r, 1)
        self.poolings = check_int("poolings", poolings, 0)
        self.attention = check_choice("attention", attention, ATTENTION_ACTIVATIONS)
        self.weight_decay = check_weight_decay(weight_decay)
        n, wd = self.poolings, self.weight_decay
        self.pools = [keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i + 1}") for i in range(n)]
        # Down level i (after pooling i + 1) has r units; the lowest level has 2r.
        self.down_stacks = [ResidualStack(r, wd, name=f"down{i + 1}") for i in range(n - 1)]
        self.down_stacks.append(ResidualStack(2 * r, wd, name=f"down{n}"))
        self.skips = []  # one unit per down-level but the lowest; created in build(), once the width is known
        # In float32 under any policy: TensorFlow's bilinear resize returns float32 for bfloat16/float16 input, which
        # XLA then refuses to mix with the low-precision gradient (tensorflow#81273); the result is cast back.
        self.upsamples = [keras.layers.UpSampling2D(2, interpolation="bilinear", dtype="float32", name=f"up{i}")
                          for i in range(n)]
        self.up_stacks = [ResidualStack(r, wd, name=f"up{i}_units") for i in range(n)]
        self.head = MaskHead(attention, wd, name="head")

    def build(self, input_shape):
        _, height, width, channels = input_shape
        factor = 2**self.poolings
        if height is None or width is None or height % factor or width % factor:
            raise ValueError(f"SoftMaskBranch with poolings={self.poolings} needs a spatial size divisible by "
                             f"{factor}; received input shape {tuple(input_shape)}")
        self.skips = [ResidualUnit(channels, weight_decay=self.weight_decay, name=f"skip{i + 1}")
                      for i in range(self.poolings - 1)]
        shape = tuple(input_shape)
        for level in range(self.poolings):
            shape = build_sequence([self.pools[level], self.down_stacks[level]], shape)
            if level < self.poolings - 1:
                build_sequence([self.skips[level]], shape)
        if self.poolings == 0:
            shape = build_sequence(self.down_stacks, shape)
        for level in reversed(range(self.poolings)):
            shape = build_sequence([self.upsamples[level], self.up_stacks[level]], shape)
        build_sequence([self.head], shape)

    def call(self, inputs, training=None):
        x = inputs
        skips = []
        for level, pool in enumerate(self.pools):
            x = self.down_stacks[level](pool(x), training=training)  # (B, H / 2^(level+1), W / 2^(level+1), C)
            if level < self.poolings - 1:
                skips.append(self.skips[level](x, training=training))
        if self.poolings == 0:
            x = self.down_stacks[0](x, training=training)
        for level in reversed(range(self.poolings)):
            x = ops.cast(self.upsamples[level](x), x.dtype)  # (B, H / 2^level, W / 2^level, C)
            if level > 0:
                x = x + skips[level - 1]
            x = self.up_stacks[level](x, training=training)
        return self.head(x, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def children(self):
        return [*self.down_stacks, *self.skips, *self.up_stacks, self.head]

    def get_config(self):
        return {**super().get_config(), "r": self.r, "poolings": self.poolings, "attention": self.attention,
                "weight_decay": self.weight_decay}


@keras.saving.register_keras_serializable(package="ran")
class LocalConvMask(keras.layers.Layer):
    """Local-convolution mask (Table 4): three residual units, no pooling, then `MaskHead`.

    Replaces the encoder-decoder branch to test whether the bottom-up top-down structure matters; everything else in
    the attention module stays the same.
    """

    def __init__(self, attention: str = "mixed", weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.attention = check_choice("attention", attention, ATTENTION_ACTIVATIONS)
        self.weight_decay = check_weight_decay(weight_decay)
        self.units = ResidualStack(LOCAL_CONV_UNITS, self.weight_decay, name="units")
        self.head = MaskHead(attention, self.weight_decay, name="head")

    def build(self, input_shape):
        build_sequence([self.units, self.head], input_shape)

    def call(self, inputs, training=None):
        return self.head(self.units(inputs, training=training), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def children(self):
        return [self.units, self.head]

    def get_config(self):
        return {**super().get_config(), "attention": self.attention, "weight_decay": self.weight_decay}
