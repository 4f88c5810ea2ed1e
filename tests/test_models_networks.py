"""Network-level tests of ran.models: the variant table against the paper, gradients, saving, soft masks.

Each network is built once per session (`network`); the 452-layer network's tests are marked slow.
"""

import functools
import math

import keras
import numpy as np
import pytest

from ran.models import (
    VARIANTS,
    ResidualUnit,
    build_network,
    count_params,
    forward_macs,
    mask_poolings,
    network_depth,
    soft_mask_model,
    soft_masks,
)
from test_models_layers import weights_without_gradient

WEIGHT_DECAY = 1e-4
ALL_VARIANTS = [pytest.param(name, marks=pytest.mark.slow) if name == "attention452" else name for name in VARIANTS]


@functools.cache
def network(name: str, **options) -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_network(name, 10, weight_decay=WEIGHT_DECAY, **options)


def images(count: int = 2, size: int = 32) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(count, size, size, 3)).astype("float32")


def test_variant_table_follows_36m_plus_20():
    for name, variant in VARIANTS.items():
        assert variant.depth == int(name.removeprefix("attention").removeprefix("resnet")) == variant.expected_depth
        if variant.modules_per_stage:
            assert variant.depth == 36 * variant.modules_per_stage + 20 or (variant.p, variant.t) != (1, 2)
    assert [VARIANTS[n].paper_params_m for n in ("resnet164", "attention92", "attention236", "attention452")] == [
        1.7, 1.9, 5.1, 8.6]


def test_mask_poolings_follow_smallest_trunk_map_rule():
    assert mask_poolings(32) == [2, 1, 0]
    assert mask_poolings(8) == [2, 1, 0]


@pytest.mark.parametrize("name", ["resnet164", "attention92", "attention236"])
def test_parameter_count_matches_table6_within_5_percent(name):
    assert count_params(network(name)) == pytest.approx(VARIANTS[name].paper_params_m * 1e6, rel=0.05)


@pytest.mark.slow
def test_attention452_parameter_count_is_reported_with_its_gap():
    # docs/models.md explains the gap: r = 3 triples every mask level, and the 2r units of the 8 px masks dominate.
    params = count_params(network("attention452"))
    print(f"attention452: {params} parameters, paper 8.6M, gap {params / 8.6e6 - 1:+.1%}")
    assert 8.6e6 < params < 8.6e6 * 1.2


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_depth_counted_from_built_graph(name):
    variant = VARIANTS[name]
    expected = 36 * variant.modules_per_stage + 20 if (variant.p, variant.t) == (1, 2) else variant.depth
    assert network_depth(network(name)) == expected == variant.depth


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_every_weight_gets_a_gradient(name):
    labels = np.array([1, 7])

    def loss(logits):
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))

    assert weights_without_gradient(network(name), images(), loss) == []


@pytest.mark.parametrize(
    "options", [{"attention": "channel"}, {"attention": "spatial"}, {"learning": "NAL"}, {"mask": "local_conv"}],
    ids=lambda options: "-".join(options.values()),
)
def test_attention56_options_build_and_train(options):
    model = network("attention56", **options)
    assert network_depth(model) == 56
    assert weights_without_gradient(model, images(), lambda y: keras.ops.sum(y * y)) == []


def test_logits_float32_and_finite():
    logits = np.asarray(network("attention56")(images(4), training=False))
    assert logits.shape == (4, 10) and logits.dtype == np.float32 and np.isfinite(logits).all()
    assert not np.allclose(logits.sum(axis=1), 1.0)  # logits, not probabilities


def test_logits_stay_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_network("attention56", 10, attention="spatial", input_shape=(8, 8, 3))
        logits = model(images(2, 8))
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert keras.backend.standardize_dtype(logits.dtype) == "float32" and np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("attention", ["mixed", "channel", "spatial"])
def test_masks_and_their_combination_compute_in_float32_under_bfloat16(attention):
    """The soft mask keeps float32 resolution (a bfloat16 (1 + M) takes 129 values) and the combination runs in
    float32; the module hands bfloat16 on to the next units."""
    from ran.models import AttentionModule

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        module = AttentionModule(poolings=1, attention=attention, learning="ARL")
        features = keras.ops.cast(np.random.default_rng(0).normal(size=(2, 8, 8, 16)), "bfloat16")
        out = module(features)
        mask = module.soft_mask(features)
    finally:
        keras.config.set_dtype_policy(previous)
    assert module.mask_branch.compute_dtype == "bfloat16" and module.combine.compute_dtype == "float32"
    activations = [layer for layer in module.mask_branch._flatten_layers() if layer.name == "activation"]
    assert activations and all(layer.compute_dtype == "float32" for layer in activations)
    assert keras.backend.standardize_dtype(mask.dtype) == "float32"
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    if attention != "channel":  # f2 can be negative; f1/f3 are in (0, 1)
        assert len(np.unique(np.asarray(mask))) > 129


def test_weight_decay_is_half_wd_times_squared_kernel_norm_on_kernels_only():
    # SGD weight decay wd adds wd * w to the gradient, i.e. the loss 0.5 * wd * ||w||^2 (blocks.l2_penalty).
    model = network("attention56")
    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
    expected = 0.5 * WEIGHT_DECAY * sum(float(np.sum(np.square(np.asarray(k)))) for k in kernels)
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses)) == pytest.approx(expected, rel=1e-4)
    # stem, 3 opening units (3 convs + projection), 3 modules' trunk paths (4 units), masks at 32 / 16 / 8 px
    # (6, 3 and 2 units + two 1x1 convs each), 3 final units, classifier: every kernel decayed, nothing else
    assert len(model.losses) == len(kernels) == 1 + 3 * 4 + 3 * 4 * 3 + (6 + 3 + 2) * 3 + 3 * 2 + 3 * 3 + 1
    assert all(v.regularizer is None for v in model.trainable_variables if not v.path.endswith("kernel"))


def resnet164_macs_by_hand() -> int:
    total = 32 * 32 * 9 * 3 * 16 + 256 * 10  # stem, classifier
    in_channels, size = 16, 32
    for channels, stride in ((64, 1), (128, 2), (256, 2)):
        width, out = channels // 4, size // stride
        total += size * size * in_channels * width + out * out * (9 * width * width + width * channels)
        total += out * out * in_channels * channels  # projection shortcut of the first unit
        total += 17 * out * out * (2 * channels * width + 9 * width * width)
        in_channels, size = channels, out
    return total


def test_forward_macs_matches_hand_count_for_resnet164():
    assert forward_macs(network("resnet164")) == resnet164_macs_by_hand()


def test_local_conv_mask_costs_about_as_much_as_the_encoder_decoder():
    encoder_decoder = forward_macs(network("attention56"))
    local_conv = forward_macs(network("attention56", mask="local_conv"))
    print(f"attention56 MACs: encoder-decoder {encoder_decoder}, local conv {local_conv}")
    assert local_conv > encoder_decoder  # the local mask keeps every unit at full resolution


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside keras saving
def test_keras_round_trip_gives_identical_outputs(tmp_path):
    for options in ({}, {"attention": "channel", "learning": "NAL", "mask": "local_conv"}):
        model = network("attention56", **options)
        model.save(tmp_path / "model.keras")
        loaded = keras.saving.load_model(tmp_path / "model.keras")
        x = images(3)
        np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
        assert network_depth(loaded) == 56 and count_params(loaded) == count_params(model)
        assert forward_macs(loaded) == forward_macs(model)


def wrapped(model: keras.Model) -> keras.Model:
    """Like the trainer's model: uint8 images, mean subtraction with ops (no layer), augmentation, the network."""
    raw = keras.Input((32, 32, 3), dtype="uint8")
    x = keras.ops.cast(raw, "float32") - 120.0
    x = keras.layers.RandomFlip("horizontal")(x)
    return keras.Model(raw, model(x), name="trainer_wrapper")


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside keras saving
def test_soft_masks_of_every_module_for_plain_wrapped_and_loaded_models(tmp_path):
    model = network("attention92")
    x = images(3)
    masks = soft_masks(model, x)
    assert {name: mask.shape for name, mask in masks.items()} == {
        f"stage{s}_module{k}": (3, 32 // 2 ** (s - 1), 32 // 2 ** (s - 1)) for s in (1, 2, 3) for k in (1, 2)}
    assert all(0.0 <= mask.min() and mask.max() <= 1.0 for mask in masks.values())
    raw = np.clip(x * 10 + 120, 0, 255).astype("uint8")
    outer = wrapped(model)
    outer.save(tmp_path / "wrapped.keras")
    expected = soft_masks(model, raw.astype("float32") - 120.0)
    for candidate in (outer, keras.saving.load_model(tmp_path / "wrapped.keras")):
        for name, mask in soft_masks(candidate, raw).items():
            np.testing.assert_allclose(mask, expected[name], atol=1e-6)
    mask_model = soft_mask_model(model)
    assert mask_model.output["stage3_module2"].shape == (None, 8, 8, 256)


def test_soft_masks_of_resnet_raise():
    with pytest.raises(ValueError, match="no attention modules"):
        soft_mask_model(network("resnet164"))


def test_one_fit_step_on_a_small_network():
    model = build_network("attention56", 10, input_shape=(8, 8, 3))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    before = [np.asarray(v).copy() for v in model.trainable_variables]
    history = model.fit(images(4, 8), np.array([0, 1, 2, 3]), batch_size=4, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][0])
    after = [np.asarray(v) for v in model.trainable_variables]
    assert all(np.any(b != a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"network": "attention57"}, r"network must be one of \['attention56', .*'resnet164'\]; received 'attention5"),
        ({"network": "resnet164", "attention": "mixed"}, "attention must be None for resnet164.*received 'mixed'"),
        ({"network": "resnet164", "mask": "local_conv"}, "mask must be None for resnet164.*received 'local_conv'"),
        ({"attention": "local"}, r"attention must be one of \['mixed', 'channel', 'spatial'\]; received 'local'"),
        ({"learning": "RL"}, r"learning must be one of \['ARL', 'NAL'\]; received 'RL'"),
        ({"mask": "pooling"}, r"mask must be one of \['encoder_decoder', 'local_conv'\]; received 'pooling'"),
        ({"num_classes": 1}, "num_classes must be an integer >= 2; received 1"),
        ({"weight_decay": -0.1}, "weight_decay must be a number >= 0; received -0.1"),
        ({"input_shape": (30, 30, 3)}, r"multiples of 4; received \(30, 30, 3\)"),
    ],
)
def test_build_network_rejects_bad_arguments(kwargs, message):
    arguments = {"network": "attention56", "num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_network(**arguments)


def test_units_open_each_stage_with_stride_and_projection():
    model = network("attention56")
    units = [layer for layer in model.layers if isinstance(layer, ResidualUnit)]
    assert [(u.name, u.strides, u.shortcut is not None) for u in units] == [
        ("stage1_unit1", 1, True), ("stage2_unit1", 2, True), ("stage3_unit1", 2, True),
        ("final_unit1", 1, False), ("final_unit2", 1, False), ("final_unit3", 1, False)]
