"""Small synthetic classification tasks for tests (no files needed).

``blobs``: K Gaussian clusters in ``shape`` (flattened) dimensions with a
random linear structure, learnable in a few hundred steps.
"""

from __future__ import annotations

import numpy as np


def blobs(rng: np.random.Generator, n_train=512, n_test=256, n_classes=10, shape=(1, 8, 8),
          noise=1.0):
    d = int(np.prod(shape))
    centers = rng.standard_normal((n_classes, d)) * 2.0

    def sample(n):
        y = rng.integers(0, n_classes, size=n)
        x = centers[y] + noise * rng.standard_normal((n, d))
        return np.tanh(x / 3.0).reshape((n,) + tuple(shape)).astype(np.float64), y.astype(np.int64)

    return sample(n_train), sample(n_test)
