"""TensorFlow + XLA compiles the encoder-decoder mask under mixed precision (issue: ResizeBilinear returned
float32 for bfloat16 input and XLA refused the mix in its gradient); the step runs and its loss is finite."""

import keras
import numpy as np
import pytest

from ran.models import build_network


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the failure was TensorFlow's XLA bridge")
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_attention56_trains_under_xla_in_mixed_precision(policy):
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        network = build_network("attention56", 10)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    optimizer = keras.optimizers.SGD(0.01)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    network.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    jit_compile=True)
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(2, 32, 32, 3)).astype(np.float32), np.array([1, 7])
    history = network.fit(images, labels, batch_size=2, epochs=1, verbose=0).history
    assert network.jit_compile and np.isfinite(history["loss"][-1])
