"""A neurosim plug-in: a learning rule, a dataset and a neuron model from another package."""

import numpy as np

from neurosim.core.backend import array_module
from neurosim.core.options import Field, Section
from neurosim.model.nonlinearity import Nonlinearity
from neurosim.rules.dfa import DFA


class BinaryDFA(DFA):
    """DFA (δ^ℓ = e B^ℓ) whose fixed feedback weights are ±scale: the signs of DFA's matrix."""

    name = "binary_dfa"
    OPTIONS = Section({"scale": Field(float, default=1.0, min=0, exclusive_min=True,
                                      doc="magnitude of every feedback weight")})

    def __init__(self, net, backend, scale=1.0):
        super().__init__(net, backend, sign="mixed")
        self.matrix = np.where(np.asarray(self.matrix) >= 0, scale, -scale)
        self.feedback = {i: backend.asarray(self.matrix[:, :B.shape[1]])
                         for i, B in self.feedback.items()}


def xor(root=None, n_train=400, n_test=200, noise=0.25, seed=0):
    """Points around the four corners of a square, labelled by the XOR of their signs."""
    rng = np.random.default_rng(seed)

    def split(n):
        corner = rng.integers(0, 2, size=(n, 2))
        return 2.0 * corner - 1 + noise * rng.normal(size=(n, 2)), corner[:, 0] ^ corner[:, 1]

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "n_classes": 2}


xor.OPTIONS = {  # its data.options
    "n_train": Field(int, default=400, min=1, doc="training examples"),
    "n_test": Field(int, default=200, min=1, doc="test examples"),
    "noise": Field(float, default=0.25, min=0, doc="standard deviation around each corner"),
    "seed": Field(int, default=0, min=0, doc="seed of the generated points"),
}
xor.SHAPE = ((1, 1, 2), 2)  # (example shape, classes): protocols are checked before data load


class Softplus(Nonlinearity):
    """A smooth rectifier: a = log(1 + e^h), ∂a/∂h = 1 / (1 + e^−h)."""

    name = "softplus"

    def __call__(self, h, t=None):
        xp = array_module(h)
        return xp.logaddexp(0.0, h), 1.0 / (1.0 + xp.exp(-h))
