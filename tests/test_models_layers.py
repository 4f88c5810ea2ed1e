"""Layer-level tests of ran.models at tiny shapes. Backend-neutral: test_models_jax.py reruns this file under JAX."""

import keras
import numpy as np
import pytest

from ran.models import (
    AttentionModule,
    AttentionResidualLearning,
    ChannelAttention,
    LocalConvMask,
    MaskHead,
    MixedAttention,
    NaiveAttentionLearning,
    ResidualStack,
    ResidualUnit,
    SoftMaskBranch,
    SpatialAttention,
    TrunkBranch,
    build_network,
    network_depth,
    soft_masks,
)

RNG = np.random.default_rng(0)


def trainable_gradients(model_or_layer, inputs, loss_fn) -> list[np.ndarray]:
    """Gradients of `loss_fn(outputs)` w.r.t. every trainable variable, in training mode, on either backend."""
    variables = model_or_layer.trainable_variables
    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in variables]
        non_trainable = [v.value for v in model_or_layer.non_trainable_variables]

        def loss(values):
            outputs, _ = model_or_layer.stateless_call(values, non_trainable, inputs, training=True)
            return loss_fn(outputs)

        return [np.asarray(g) for g in jax.grad(loss)(trainable)]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn(model_or_layer(inputs, training=True))
    return [np.asarray(g) for g in tape.gradient(loss, variables)]


def weights_without_gradient(model_or_layer, inputs, loss_fn) -> list[str]:
    gradients = trainable_gradients(model_or_layer, inputs, loss_fn)
    return [v.path for v, g in zip(model_or_layer.trainable_variables, gradients, strict=True) if not np.any(g)]


def random_features(shape=(2, 8, 8, 16)) -> np.ndarray:
    return RNG.normal(size=shape).astype("float32")


def spatial_attention_reference(x: np.ndarray, epsilon: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = np.sqrt(x.var(axis=(1, 2), keepdims=True) + epsilon)
    return 1.0 / (1.0 + np.exp(-(x - mean) / std))


# Attention activations (Eqs. 4-6)
@pytest.mark.parametrize("layer", [MixedAttention(), SpatialAttention()], ids=["f1", "f3"])
def test_sigmoid_masks_lie_in_unit_interval(layer):
    mask = np.asarray(layer(10.0 * random_features()))
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask.min() < 0.1 and mask.max() > 0.9  # not a constant: the test could fail


def test_mixed_attention_is_elementwise_sigmoid():
    x = random_features()
    np.testing.assert_allclose(np.asarray(MixedAttention()(x)), 1.0 / (1.0 + np.exp(-x)), rtol=1e-5, atol=1e-6)


def test_channel_attention_has_unit_l2_norm_across_channels():
    x = 5.0 * random_features() + 1.0
    y = np.asarray(ChannelAttention()(x))
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y * np.linalg.norm(x, axis=-1, keepdims=True), x, rtol=1e-4, atol=1e-5)  # no sigmoid
    assert y.min() < 0  # f2 is not squashed into [0, 1]


def test_channel_attention_maps_zero_position_to_zero():
    assert not np.any(np.asarray(ChannelAttention()(np.zeros((1, 2, 2, 4), "float32"))))


def test_spatial_attention_matches_per_sample_per_channel_reference():
    # Every sample and channel gets its own offset and scale, so pooling over the batch or channels would differ.
    x = random_features((3, 4, 5, 6)) * RNG.uniform(0.5, 8.0, (3, 1, 1, 6)) + RNG.uniform(-4, 4, (3, 1, 1, 6))
    x = x.astype("float32")
    np.testing.assert_allclose(np.asarray(SpatialAttention()(x)), spatial_attention_reference(x), atol=1e-5)
    pooled_over_channels = 1.0 / (1.0 + np.exp(-(x - x.mean(axis=(1, 2, 3), keepdims=True))
                                              / x.std(axis=(1, 2, 3), keepdims=True)))
    assert np.abs(np.asarray(SpatialAttention()(x)) - pooled_over_channels).max() > 0.1


def test_spatial_attention_gives_half_for_a_constant_channel_and_ignores_other_samples():
    x = random_features((2, 4, 4, 3))
    x[0, :, :, 1] = 7.0
    y = np.asarray(SpatialAttention()(x))
    np.testing.assert_allclose(y[0, :, :, 1], 0.5)
    x_other = x.copy()
    x_other[1] = 100.0 * x_other[1] + 3.0
    np.testing.assert_allclose(np.asarray(SpatialAttention()(x_other))[0], y[0], atol=1e-6)


# Attention learning (Eq. 3)
def test_arl_with_zero_mask_returns_trunk_and_nal_with_unit_mask_returns_trunk():
    trunk = random_features()
    np.testing.assert_array_equal(np.asarray(AttentionResidualLearning()(trunk, np.zeros_like(trunk))), trunk)
    np.testing.assert_array_equal(np.asarray(NaiveAttentionLearning()(trunk, np.ones_like(trunk))), trunk)


def test_arl_and_nal_formulas():
    trunk, mask = random_features(), RNG.uniform(size=(2, 8, 8, 16)).astype("float32")
    np.testing.assert_allclose(np.asarray(AttentionResidualLearning()(trunk, mask)), (1 + mask) * trunk, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(NaiveAttentionLearning()(trunk, mask)), mask * trunk, rtol=1e-6)


# Residual units and branches
def test_residual_unit_projects_only_where_shape_changes():
    same = ResidualUnit(16)
    assert same(random_features()).shape == (2, 8, 8, 16) and same.shortcut is None
    down = ResidualUnit(32, strides=2)
    assert down(random_features()).shape == (2, 4, 4, 32) and down.shortcut is not None
    assert [conv.kernel.shape for conv in down.trunk_children()] == [(1, 1, 16, 8), (3, 3, 8, 8), (1, 1, 8, 32)]
    assert all(not conv.use_bias for conv in down.children() if isinstance(conv, keras.layers.Conv2D))


def count_units(layer) -> int:
    if isinstance(layer, ResidualUnit):
        return 1
    return sum(count_units(child) for child in getattr(layer, "children", list)())


@pytest.mark.parametrize(("poolings", "r", "units"), [(0, 1, 2), (1, 1, 3), (2, 1, 6), (2, 3, 16), (0, 3, 6)])
def test_soft_mask_branch_structure(poolings, r, units):
    # down: r per level, 2r at the lowest; one skip unit per level above the lowest; up: r after each up-sampling
    branch = SoftMaskBranch(r=r, poolings=poolings)
    assert branch(random_features()).shape == (2, 8, 8, 16)
    assert count_units(branch) == units
    assert len(branch.pools) == len(branch.upsamples) == poolings


def test_soft_mask_branch_rejects_indivisible_size():
    with pytest.raises(ValueError, match=r"divisible by 4; received input shape \(2, 6, 6, 16\)"):
        SoftMaskBranch(poolings=2)(random_features((2, 6, 6, 16)))


def test_local_conv_mask_has_three_units_and_no_pooling():
    mask = LocalConvMask()
    assert mask(random_features()).shape == (2, 8, 8, 16)
    assert count_units(mask) == 3


def test_trunk_branch_has_t_units():
    trunk = TrunkBranch(3)
    trunk(random_features())
    assert count_units(trunk) == 3 and trunk.get_config()["t"] == 3


@pytest.mark.parametrize(
    ("attention", "learning", "mask"),
    [("mixed", "ARL", "encoder_decoder"), ("channel", "NAL", "encoder_decoder"), ("spatial", "ARL", "local_conv")],
)
def test_attention_module_trains_every_weight_and_round_trips_config(attention, learning, mask):
    module = AttentionModule(1, 1, 1, poolings=1, attention=attention, learning=learning, mask=mask)
    x = random_features((2, 4, 4, 16))
    assert module(x).shape == x.shape
    assert module.soft_mask(x).shape == x.shape
    assert weights_without_gradient(module, x, lambda y: keras.ops.sum(y * x)) == []
    clone = AttentionModule.from_config(module.get_config())
    assert clone.get_config() == module.get_config()
    clone(x)
    assert len(clone.weights) == len(module.weights)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ResidualUnit(6), "filters must be a multiple of 4; received 6"),
        (lambda: ResidualUnit(16, strides=3), r"strides must be one of \[1, 2\]; received 3"),
        (lambda: AttentionModule(p=0), "p must be an integer >= 1; received 0"),
        (lambda: AttentionModule(t=0), "t must be an integer >= 1; received 0"),
        (lambda: AttentionModule(r=0), "r must be an integer >= 1; received 0"),
        (lambda: AttentionModule(poolings=-1), "poolings must be an integer >= 0; received -1"),
        (lambda: AttentionModule(attention="soft"), r"attention must be one of \['mixed', 'channel', 'spatial'\]; "
                                                    "received 'soft'"),
        (lambda: AttentionModule(learning="arl"), r"learning must be one of \['ARL', 'NAL'\]; received 'arl'"),
        (lambda: AttentionModule(mask="unet"), r"mask must be one of \['encoder_decoder', 'local_conv'\]; "
                                               "received 'unet'"),
        (lambda: ResidualStack(2, weight_decay=-1.0), "weight_decay must be a number >= 0; received -1.0"),
        (lambda: TrunkBranch(1.5), "t must be an integer >= 1; received 1.5"),
        (lambda: SpatialAttention(epsilon=0), "epsilon must be a number > 0; received 0"),
        (lambda: SoftMaskBranch(attention="f1"), r"attention must be one of \['mixed', 'channel', 'spatial'\]"),
    ],
)
def test_invalid_layer_arguments_raise_with_value_and_allowed(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer",
    [ResidualUnit(32, strides=2, weight_decay=1e-4), ResidualStack(2), TrunkBranch(3), MaskHead("channel"),
     SoftMaskBranch(3, 2, "spatial"), LocalConvMask("spatial"), MixedAttention(), ChannelAttention(1e-9),
     SpatialAttention(1e-3), AttentionResidualLearning(), NaiveAttentionLearning(),
     AttentionModule(2, 4, 3, 0, "channel", "NAL", "local_conv", 1e-4)],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert keras.saving.get_registered_name(type(layer)) == f"ran>{type(layer).__name__}"


def test_small_network_forward_depth_and_masks():
    # 8x8 input: the CIFAR layout at a quarter of the size (stages at 8, 4, 2 px), cheap on any backend.
    network = build_network("attention56", 10, input_shape=(8, 8, 3))
    images = random_features((2, 8, 8, 3))
    logits = np.asarray(network(images))
    assert logits.shape == (2, 10) and logits.dtype == np.float32 and np.isfinite(logits).all()
    assert network_depth(network) == 56
    masks = soft_masks(network, images)
    assert {name: mask.shape for name, mask in masks.items()} == {
        "stage1_module1": (2, 8, 8), "stage2_module1": (2, 4, 4), "stage3_module1": (2, 2, 2)}
