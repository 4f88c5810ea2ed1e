"""Input layers (Sec. 4.1): per-pixel mean subtraction; zero-pad 4, random 32x32 crop, random horizontal flip."""

import keras
import numpy as np
import pytest
from keras import ops

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
    layer = PadCropFlip(pad=PAD, seed=1)
    offsets, flips = layer.draw(2000)
    offsets, flips = ops.convert_to_numpy(offsets), ops.convert_to_numpy(flips)
    assert offsets.min() == 0 and offsets.max() == 2 * PAD
    assert set(np.unique(offsets)) == set(range(2 * PAD + 1))
    assert 0.45 < flips.mean() < 0.55


def test_training_output_keeps_shape_and_varies_inference_is_identity(images):
    layer = PadCropFlip(pad=PAD, seed=2)
    augmented = ops.convert_to_numpy(layer(images, training=True))
    assert augmented.shape == images.shape
    assert not np.array_equal(augmented, images)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(images, training=False)), images)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(images)), images)


def test_same_seed_same_draws_and_config_round_trip():
    first, second = PadCropFlip(pad=3, flip=False, seed=5), PadCropFlip(pad=3, flip=False, seed=5)
    np.testing.assert_array_equal(ops.convert_to_numpy(first.draw(16)[0]), ops.convert_to_numpy(second.draw(16)[0]))
    assert first.draw(4)[1] is None
    clone = PadCropFlip.from_config(first.get_config())
    assert (clone.pad, clone.flip, clone.seed) == (3, False, 5)
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
