"""The attention module (Sec. 3, Fig. 2): p units, trunk and soft-mask branches combined by ARL or NAL, p units."""

from __future__ import annotations

import keras
from keras import ops

from ran.models.attention import ATTENTION_ACTIVATIONS, ATTENTION_LEARNING, attention_learning
from ran.models.blocks import build_sequence
from ran.models.checks import check_choice, check_int, check_weight_decay
from ran.models.mask import LocalConvMask, SoftMaskBranch
from ran.models.residual import ResidualStack, TrunkBranch

MASK_TYPES = ("encoder_decoder", "local_conv")


@keras.saving.register_keras_serializable(package="ran")
class AttentionModule(keras.layers.Layer):
    """Attention module `(p, t, r)` at a constant width and resolution (Sec. 3, Fig. 2).

    `p` residual units, then a split into a trunk branch `T` (`t` units) and a soft-mask branch `M` (an
    encoder-decoder `SoftMaskBranch` with `poolings` down-samplings and `r` units per level, or the Table 4
    `LocalConvMask`), combined as `(1 + M) * T` (ARL) or `M * T` (NAL), then `p` more units.
    """

    def __init__(self, p: int = 1, t: int = 2, r: int = 1, poolings: int = 1, attention: str = "mixed",
                 learning: str = "ARL", mask: str = "encoder_decoder", weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.p = check_int("p", p, 1)
        self.t = check_int("t", t, 1)
        self.r = check_int("r", r, 1)
        self.poolings = check_int("poolings", poolings, 0)
        self.attention = check_choice("attention", attention, ATTENTION_ACTIVATIONS)
        self.learning = check_choice("learning", learning, ATTENTION_LEARNING)
        self.mask = check_choice("mask", mask, MASK_TYPES)
        self.weight_decay = wd = check_weight_decay(weight_decay)
        self.pre = ResidualStack(p, wd, name="pre")
        self.trunk = TrunkBranch(t, wd, name="trunk")
        if mask == "encoder_decoder":
            self.mask_branch = SoftMaskBranch(r, poolings, attention, wd, name="mask")
        else:
            self.mask_branch = LocalConvMask(attention, wd, name="mask")
        self.combine = attention_learning(learning)
        self.post = ResidualStack(p, wd, name="post")

    def build(self, input_shape):
        build_sequence([self.pre, self.trunk, self.mask_branch, self.post], input_shape)

    def call(self, inputs, training=None):
        x = self.pre(inputs, training=training)
        trunk = self.trunk(x, training=training)
        mask = self.mask_branch(x, training=training)  # (B, H, W, C), same shape as the trunk; float32
        combined = ops.cast(self.combine(trunk, mask), x.dtype)  # computed in float32, back to the compute dtype
        return self.post(combined, training=training)

    def soft_mask(self, inputs, training=None):
        """The soft mask M this module applies to `inputs` (used to draw masks, Fig. 1)."""
        return self.mask_branch(self.pre(inputs, training=training), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def children(self):
        return [self.pre, self.trunk, self.mask_branch, self.post]

    def trunk_children(self):
        """The trunk path: the soft-mask branch does not count towards depth (Sec. 4.1, "36m + 20")."""
        return [self.pre, self.trunk, self.post]

    def get_config(self):
        return {**super().get_config(), "p": self.p, "t": self.t, "r": self.r, "poolings": self.poolings,
                "attention": self.attention, "learning": self.learning, "mask": self.mask,
                "weight_decay": self.weight_decay}
