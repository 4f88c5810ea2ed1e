"""Shared test set-up: quiet TensorFlow, a repository root, the real params.yaml."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As `ran train` sets it on a CPU (ran.runtime): many trainings share one test process, and the first one cannot
# set the inter-op threads once TensorFlow has started.
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def params() -> dict:
    from ran.config import load_params

    return load_params(ROOT / "params.yaml")
