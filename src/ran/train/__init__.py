"""Training on CIFAR with the paper's protocol (Sec. 4.1): `ran train` (run.py) drives `loop.train_seed`.

The trained model is one Keras graph: uint8 images -> per-pixel mean subtraction -> pad/crop/flip augmentation
(training only) -> network -> float32 logits, so evaluation feeds raw uint8 test images and the input pipeline needs no
TensorFlow on other backends.
"""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or Inf."""
