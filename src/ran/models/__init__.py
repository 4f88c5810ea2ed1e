"""Residual Attention Network layers and CIFAR networks in Keras 3 (backend-neutral: TensorFlow or JAX)."""

from ran.models.analysis import count_params, find_network, forward_macs, network_depth, soft_mask_model, soft_masks
from ran.models.attention import (
    AttentionResidualLearning,
    ChannelAttention,
    MixedAttention,
    NaiveAttentionLearning,
    SpatialAttention,
)
from ran.models.mask import LocalConvMask, MaskHead, SoftMaskBranch
from ran.models.module import AttentionModule
from ran.models.network import VARIANTS, Variant, build_network, mask_poolings
from ran.models.residual import ResidualStack, ResidualUnit, TrunkBranch

__all__ = [
    "VARIANTS",
    "AttentionModule",
    "AttentionResidualLearning",
    "ChannelAttention",
    "LocalConvMask",
    "MaskHead",
    "MixedAttention",
    "NaiveAttentionLearning",
    "ResidualStack",
    "ResidualUnit",
    "SoftMaskBranch",
    "SpatialAttention",
    "TrunkBranch",
    "Variant",
    "build_network",
    "count_params",
    "find_network",
    "forward_macs",
    "mask_poolings",
    "network_depth",
    "soft_mask_model",
    "soft_masks",
]
