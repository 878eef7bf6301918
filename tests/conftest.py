import os
from pathlib import Path

import numpy as np
import pytest

from neurosim.core.backend import Backend


@pytest.fixture
def be64():
    return Backend("cpu", "float64", seed=123)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def mnist_dir():
    d = os.environ.get("NEUROSIM_DATA_DIR")
    if d and all((Path(d) / "mnist" / f).exists() for f in (
            "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        return d
    return None


requires_mnist = pytest.mark.skipif(mnist_dir() is None,
                                    reason="real MNIST not found in $NEUROSIM_DATA_DIR/mnist")
