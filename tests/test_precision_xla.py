"""TensorFlow + XLA compiles the encoder-decoder mask under mixed precision (issue: ResizeBilinear returned
float32 for bfloat16 input and XLA refused the mix in its gradient); the step runs and its loss is finite.

Each case runs in a process of its own: Keras turns XLA off once a training test in this process has switched on
TensorFlow's op determinism, which cannot be switched off again.
"""

import os
import subprocess
import sys
import textwrap

import keras
import pytest

STEP = textwrap.dedent("""
    import sys

    import keras
    import numpy as np

    from ran.models import build_network

    policy = sys.argv[1]
    keras.mixed_precision.set_dtype_policy(policy)
    network = build_network("attention56", 10)
    optimizer = keras.optimizers.SGD(0.01)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    network.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    jit_compile=True)
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(2, 32, 32, 3)).astype(np.float32), np.array([1, 7])
    loss = network.fit(images, labels, batch_size=2, epochs=1, verbose=0).history["loss"][-1]
    assert network.jit_compile and np.isfinite(loss), (network.jit_compile, loss)
    print("ok", loss)
""")


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the failure was TensorFlow's XLA bridge")
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_attention56_trains_under_xla_in_mixed_precision(policy):
    env = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
    result = subprocess.run([sys.executable, "-c", STEP, policy], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stderr[-3000:]
