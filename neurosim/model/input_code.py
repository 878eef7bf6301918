"""The input code of a circuit (``circuit.input_code``): how the stimulus reaches the first layer.

* ``identity``: the input x itself; the first layer's weights are of mixed sign (the paper's
  circuits: eq. 16 keeps only the weights beyond the first layer nonnegative).
* ``on_off``: two input populations, ON ``(1 + x)/2`` and OFF ``(1 − x)/2`` (for the built-in
  data sets, normalised to [−1, 1], both lie in [0, 1]: the image and its negative), stacked
  along the channel axis, and the first layer's weights nonnegative as well — every weight of
  the circuit then has one sign per presynaptic population (Dale's law; the biases, a tonic
  drive, keep any sign).  Because ``W_on·(1 + x)/2 + W_off·(1 − x)/2 = (W_on − W_off)/2 · x +
  (W_on + W_off)/2``, the pair represents any mixed first layer ``W = (W_on − W_off)/2`` whose
  constant part the bias absorbs.  The first layer is initialised as exactly that
  reparametrisation of the identity code's draw: ``W_on = 2[W]+``, ``W_off = 2[−W]+``,
  ``b −= Σ_j |W_j|`` — the network computes the same function at initialisation, and learns
  with its first layer clamped at 0 like the layers after it.
"""

from __future__ import annotations

import numpy as np

from ..core.backend import array_module

CODES = ("identity", "on_off")


def encoded_shape(in_shape, code: str) -> tuple:
    """The shape of one encoded example: ``on_off`` doubles the channels (the first axis)."""
    in_shape = tuple(int(s) for s in in_shape)
    if code == "on_off":
        return (2 * in_shape[0],) + in_shape[1:]
    return in_shape


def encode(x, code: str):
    """Encode a batch ``x`` (B, C, ...): ``on_off`` gives (B, 2C, ...), the ON channels
    ``(1 + x)/2`` then the OFF channels ``(1 − x)/2``."""
    if code != "on_off":
        return x
    xp = array_module(x)
    return xp.concatenate([(1 + x) / 2, (1 - x) / 2], axis=1)


def split_first_layer(W, b):
    """The ON/OFF first layer ``(W_enc, b_enc)`` of a first layer ``(W, b)`` drawn for the raw
    input (input index last, (C, ...) flattened): ``W_enc = [2[W]+, 2[−W]+]`` along the input
    axis and ``b_enc = b − Σ_j |W_j|``, which compute ``W x + b`` on the encoded input."""
    W = np.asarray(W)
    W_enc = np.concatenate([2.0 * np.maximum(W, 0.0), 2.0 * np.maximum(-W, 0.0)], axis=-1)
    return W_enc, np.asarray(b) - np.abs(W).sum(axis=-1)
