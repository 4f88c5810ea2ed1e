"""Convolution and batch-normalisation factories shared by every layer, and the weight-decay convention.

He initialisation and weight decay on convolution and dense kernels only (Sec. 4.1; decision 5). Batch
normalisation follows the pre-activation ResNet reference (momentum 0.9, epsilon 1e-5); its parameters are not decayed.
"""

from __future__ import annotations

import keras

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def l2_penalty(weight_decay: float) -> keras.regularizers.Regularizer | None:
    """The L2 regulariser whose gradient is SGD weight decay `weight_decay` (paper: 1e-4).

    SGD with weight decay `wd` adds `wd * w` to the gradient (Caffe / Torch convention, used by the paper). Keras'
    `L2(l)` adds the loss `l * ||w||^2`, whose gradient is `2 * l * w`; so `wd` corresponds to `L2(0.5 * wd)`.
    """
    return keras.regularizers.L2(0.5 * weight_decay) if weight_decay > 0 else None


def conv2d(filters: int, kernel_size: int, weight_decay: float, strides: int = 1, name: str | None = None):
    """A bias-free 'same' convolution with He-normal initialisation and decayed kernel."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=l2_penalty(weight_decay),
        name=name,
    )


def batch_norm(name: str | None = None) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def build_sequence(layers, input_shape):
    """Build `layers` as applied one after another to `input_shape`; return the shape that comes out.

    Composite layers build their sub-layers explicitly and implement `compute_output_shape`, so building a network
    never traces `call` (that keeps Attention-452's construction cheap).
    """
    shape = tuple(input_shape)
    for layer in layers:
        if not layer.built:
            layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape
