"""Input layers of the trained model: per-pixel mean subtraction and pad/crop/flip augmentation (Sec. 4.1).

Both run inside the compiled train step, written with keras.ops only, so any Keras backend trains from uint8 arrays in
memory. They compute in float32 whatever the global mixed-precision policy.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ran")
class PixelMeanSubtraction(keras.layers.Layer):
    """uint8 images -> float32 minus the training set's mean image, stored as a non-trainable weight.

    "the per-pixel mean subtracted" (Sec. 4.1): the mean is over training images, per position and channel, so it
    travels with the saved model and evaluation needs no separate statistics file.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.mean = self.add_weight(shape=tuple(input_shape[1:]), initializer="zeros", trainable=False, name="mean")

    def call(self, images):
        return ops.cast(images, "float32") - self.mean

    def compute_output_shape(self, input_shape):
        return input_shape


def pad_crop_flip(images, offsets, flips, pad: int):
    """Zero-pad by `pad`, take the HxW crop at `offsets` (B, 2) = (row, col) in [0, 2*pad], mirror where `flips`.

    Pure function of its random draws, so tests can place the crop exactly.
    """
    batch, height, width, channels = ops.shape(images)
    if pad:
        padded = ops.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])  # (B, H+2p, W+2p, C)
        rows = offsets[:, 0:1] + ops.arange(height, dtype=offsets.dtype)[None, :]  # (B, H)
        rows = ops.broadcast_to(rows[:, :, None, None], (batch, height, width + 2 * pad, channels))
        images = ops.take_along_axis(padded, rows, axis=1)  # (B, H, W+2p, C)
        cols = offsets[:, 1:2] + ops.arange(width, dtype=offsets.dtype)[None, :]  # (B, W)
        cols = ops.broadcast_to(cols[:, None, :, None], (batch, height, width, channels))
        images = ops.take_along_axis(images, cols, axis=2)  # (B, H, W, C)
    if flips is not None:
        images = ops.where(ops.reshape(flips, (-1, 1, 1, 1)), ops.flip(images, axis=2), images)
    return images


@keras.saving.register_keras_serializable(package="ran")
class PadCropFlip(keras.layers.Layer):
    """Translation by zero-pad `pad` + crop at given offsets, and horizontal flip where flagged (Sec. 4.1).

    The layer draws nothing: the offsets (B, 2) and flip flags (B,) arrive as inputs, drawn on the host as a pure
    function of (seed, iteration, position in batch) (`ran.train.data.augmentation_draws`), so a resumed run needs
    no random state and two runs with one seed are equal by construction on every backend. It follows the mean
    subtraction, so the zero padding is zero in the network's input space (the mean pixel in raw terms), as in the
    ResNet CIFAR recipe the paper follows. Only the training model holds it; the saved model has no augmentation.
    """

    def __init__(self, pad: int = 4, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(pad) < 0:
            raise ValueError(f"pad must be >= 0, got {pad!r}")
        self.pad = int(pad)

    def call(self, images, offsets, flips):
        return pad_crop_flip(images, ops.cast(offsets, "int32"), ops.cast(flips, "bool"), self.pad)

    def compute_output_shape(self, images_shape, offsets_shape=None, flips_shape=None):
        return images_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "pad": self.pad}
