"""Input layers of the trained model: per-pixel mean subtraction and pad/crop/flip augmentation (Sec. 4.1).

Both run inside the compiled train step, written with keras.ops and keras.random only, so any Keras backend trains
from uint8 arrays in memory. They compute in float32 whatever the global mixed-precision policy.
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
    """Random translation by zero-pad `pad` + random crop, and random horizontal flip; identity at inference.

    The draws come from a seeded `SeedGenerator` whose state is a model variable, so a checkpoint restores the
    augmentation stream exactly. It follows the mean subtraction, so the zero padding is zero in the network's input
    space (the mean pixel in raw terms), as in the ResNet CIFAR recipe the paper follows.
    """

    def __init__(self, pad: int = 4, flip: bool = True, seed: int = 0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(pad) < 0:
            raise ValueError(f"pad must be >= 0, got {pad!r}")
        self.pad, self.flip, self.seed = int(pad), bool(flip), int(seed)
        self.generator = keras.random.SeedGenerator(self.seed)

    def draw(self, batch):
        """Crop offsets (B, 2) int32 in [0, 2*pad] and flip flags (B,) bool (None when flipping is off)."""
        offsets = keras.random.randint((batch, 2), 0, 2 * self.pad + 1, dtype="int32", seed=self.generator)
        flips = keras.random.uniform((batch,), seed=self.generator) < 0.5 if self.flip else None
        return offsets, flips

    def call(self, images, training=None):
        if not training:
            return images
        offsets, flips = self.draw(ops.shape(images)[0])
        return pad_crop_flip(images, offsets, flips, self.pad)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "pad": self.pad, "flip": self.flip, "seed": self.seed}
