"""Attention activations f1 / f2 / f3 (Sec. 3.3, Eqs. 4-6) and the two ways of applying a mask (Sec. 3.1, Eq. 3).

The activations act on the soft-mask branch's last convolution output `x[b, h, w, c]`. Under any mixed-precision
policy the activations and the combination run in float32 (their layers carry a float32 dtype policy): a bfloat16
mask would take only 129 distinct values of (1 + M) and shift the logits by percents. The attention module casts the
combined features back to the network's compute dtype.
"""

from __future__ import annotations

import keras
from keras import ops

from ran.models.checks import check_choice, check_positive_float


class Float32Layer(keras.layers.Layer):
    """A layer that computes in float32 whatever the global dtype policy (Keras casts its inputs to float32)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)


@keras.saving.register_keras_serializable(package="ran")
class MixedAttention(Float32Layer):
    """f1, mixed attention (Eq. 4): `sigmoid(x[i, c])` elementwise, for every channel and spatial position."""

    def call(self, inputs):
        return ops.sigmoid(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="ran")
class ChannelAttention(Float32Layer):
    """f2, channel attention (Eq. 5): `x[i, c] / ||x[i, :]||_2`, L2 normalisation across channels, no sigmoid.

    `epsilon` bounds the squared norm from below, so an all-zero position maps to zeros instead of NaN.
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_positive_float("epsilon", epsilon)

    def call(self, inputs):
        squared_norm = ops.sum(ops.square(inputs), axis=-1, keepdims=True)  # (B, H, W, 1)
        return inputs * ops.rsqrt(ops.maximum(squared_norm, self.epsilon))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="ran")
class SpatialAttention(Float32Layer):
    """f3, spatial attention (Eq. 6): `sigmoid((x[i, c] - mean_c) / std_c)`.

    `mean_c` and `std_c` are taken over the spatial positions of channel `c` of the same sample (per sample, per
    channel; never across channels or the batch); std is the population std, with `epsilon` added to the variance so a
    constant channel gives 0 / sqrt(epsilon) = 0, i.e. a mask of 0.5.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_positive_float("epsilon", epsilon)

    def call(self, inputs):
        mean, variance = ops.moments(inputs, axes=(1, 2), keepdims=True)  # (B, 1, 1, C) each
        return ops.sigmoid((inputs - mean) * ops.rsqrt(variance + self.epsilon))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


ATTENTION_ACTIVATIONS = {"mixed": MixedAttention, "channel": ChannelAttention, "spatial": SpatialAttention}


def attention_activation(attention: str, name: str = "activation") -> keras.layers.Layer:
    """The layer for an attention type: mixed (f1), channel (f2) or spatial (f3)."""
    return ATTENTION_ACTIVATIONS[check_choice("attention", attention, ATTENTION_ACTIVATIONS)](name=name)


@keras.saving.register_keras_serializable(package="ran")
class AttentionResidualLearning(Float32Layer):
    """Attention residual learning, ARL (Eq. 3): `H = (1 + M) * T`; a mask of 0 passes the trunk through."""

    def call(self, trunk, mask):
        return (1.0 + mask) * trunk

    def compute_output_shape(self, trunk_shape, mask_shape):
        return tuple(trunk_shape)


@keras.saving.register_keras_serializable(package="ran")
class NaiveAttentionLearning(Float32Layer):
    """Naive attention learning, NAL (Sec. 3.1): `H = M * T`, the mask multiplies the trunk directly."""

    def call(self, trunk, mask):
        return mask * trunk

    def compute_output_shape(self, trunk_shape, mask_shape):
        return tuple(trunk_shape)


ATTENTION_LEARNING = {"ARL": AttentionResidualLearning, "NAL": NaiveAttentionLearning}


def attention_learning(learning: str, name: str = "combine") -> keras.layers.Layer:
    """The layer combining mask and trunk for a learning mechanism: ARL or NAL."""
    return ATTENTION_LEARNING[check_choice("learning", learning, ATTENTION_LEARNING)](name=name)
