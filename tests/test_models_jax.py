"""The layer tests again under the JAX backend: the model code must use only backend-neutral Keras.

The backend is fixed when keras is imported, hence a subprocess. The soft-mask structure tests are left out (pure
Python wiring, already covered under TensorFlow) to keep the run short.
"""

import os
import subprocess
import sys


def test_layer_tests_pass_under_jax(root):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    command = [sys.executable, "-m", "pytest", "tests/test_models_layers.py", "-q", "-p", "no:cacheprovider",
               "-k", "not soft_mask_branch_structure and not trunk_branch_has"]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    assert "jax" in subprocess.run([sys.executable, "-c", "import keras; print(keras.backend.backend())"], env=env,
                                   capture_output=True, text=True).stdout
