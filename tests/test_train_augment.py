"""Input layers (Sec. 4.1): per-pixel mean subtraction; zero-pad 4, random 32x32 crop, random horizontal flip."""

import keras
import numpy as np
import pytest
from keras import ops

from ran.train.data import augmentation_draws
from ran.train.layers import PadCropFlip, PixelMeanSubtraction, pad_crop_flip

PAD = 4


@pytest.fixture(scope="module")
def images():
    # strictly positive, so padded zeros are recognisable
    return np.random.default_rng(0).uniform(1.0, 2.0, size=(3, 8, 8, 2)).astype("float32")


def crop(images, offsets, flips=None):
    flips = None if flips is None else ops.convert_to_tensor(np.asarray(flips))
    return ops.convert_to_numpy(pad_crop_flip(ops.convert_to_tensor(images),
                                              ops.convert_to_tensor(np.asarray(offsets, "int32")), flips, PAD))


def test_centre_offset_without_flip_is_identity(images):
    np.testing.assert_array_equal(crop(images, [[PAD, PAD]] * 3), images)


def test_extreme_offsets_show_zero_padding_on_the_opposite_borders(images):
    top_left = crop(images, [[0, 0]] * 3)
    assert np.all(top_left[:, :PAD] == 0) and np.all(top_left[:, :, :PAD] == 0)
    np.testing.assert_array_equal(top_left[:, PAD:, PAD:], images[:, :-PAD, :-PAD])
    bottom_right = crop(images, [[2 * PAD, 2 * PAD]] * 3)
    assert np.all(bottom_right[:, -PAD:] == 0) and np.all(bottom_right[:, :, -PAD:] == 0)
    np.testing.assert_array_equal(bottom_right[:, :-PAD, :-PAD], images[:, PAD:, PAD:])


def test_offsets_are_per_sample(images):
    out = crop(images, [[0, 0], [PAD, PAD], [2 * PAD, 0]])
    np.testing.assert_array_equal(out[1], images[1])
    np.testing.assert_array_equal(out[2, :-PAD, PAD:], images[2, PAD:, :-PAD])


def test_flip_mirrors_only_flagged_samples(images):
    out = crop(images, [[PAD, PAD]] * 3, flips=[True, False, True])
    np.testing.assert_array_equal(out[0], images[0, :, ::-1])
    np.testing.assert_array_equal(out[1], images[1])
    np.testing.assert_array_equal(out[2], images[2, :, ::-1])


def test_drawn_offsets_cover_the_range_and_stay_in_it():
    offsets, flips = augmentation_draws(seed=1, start=0, stop=50, batch_size=40, pad=PAD, flip=True)
    assert offsets.shape == (2000, 2) and flips.shape == (2000,) and offsets.dtype == flips.dtype == np.int32
    assert set(np.unique(offsets)) == set(range(2 * PAD + 1))
    assert 0.45 < flips.mean() < 0.55
    _, none = augmentation_draws(seed=1, start=0, stop=3, batch_size=4, pad=PAD, flip=False)
    assert not none.any()


def test_draws_are_a_pure_function_of_seed_iteration_and_position():
    """What a resumed run relies on: iterations [0, 10) equal [0, 4) + [4, 10), and no other state exists."""
    whole = augmentation_draws(seed=7, start=0, stop=10, batch_size=8, pad=PAD, flip=True)
    parts = [augmentation_draws(seed=7, start=a, stop=b, batch_size=8, pad=PAD, flip=True)
             for a, b in ((0, 4), (4, 10))]
    for index in (0, 1):
        np.testing.assert_array_equal(whole[index], np.concatenate([part[index] for part in parts]))
    other = augmentation_draws(seed=8, start=0, stop=10, batch_size=8, pad=PAD, flip=True)
    assert not np.array_equal(whole[0], other[0])
    step3 = augmentation_draws(seed=7, start=3, stop=4, batch_size=8, pad=PAD, flip=True)
    np.testing.assert_array_equal(step3[0], whole[0][24:32])


def test_layer_applies_the_given_draws_and_round_trips_its_config(images):
    layer = PadCropFlip(pad=PAD)
    offsets, flips = np.array([[0, 0], [PAD, PAD], [PAD, PAD]], "int32"), np.array([0, 0, 1], "int32")
    out = ops.convert_to_numpy(layer(images, offsets, flips))
    np.testing.assert_array_equal(out, crop(images, offsets, flips.astype(bool)))
    np.testing.assert_array_equal(out[1], images[1])
    clone = PadCropFlip.from_config(layer.get_config())
    assert clone.pad == PAD
    with pytest.raises(ValueError, match="pad"):
        PadCropFlip(pad=-1)


def test_mean_subtraction_casts_uint8_and_subtracts_the_stored_mean():
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 4, 3), dtype=np.uint8)
    inputs = keras.Input((4, 4, 3), dtype="uint8")
    layer = PixelMeanSubtraction()
    model = keras.Model(inputs, layer(inputs))
    mean = images.mean(axis=0).astype("float32")
    layer.mean.assign(mean)
    assert not layer.trainable_weights
    out = ops.convert_to_numpy(model(images))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, images.astype("float32") - mean, rtol=0, atol=1e-5)
