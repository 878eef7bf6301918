"""Losses on the K output components, returning the error vector (SPEC §1).

Each loss returns ``(loss, e)``: ``loss`` is the mean over the batch (a float;
a 0-d device array on the GPU, read with ``float()``) and
``e = ∂loss/∂logits`` (so each row carries the 1/B of the mean).  The
per-example error vector of the paper is ``B·e``.

* ``cross_entropy``: softmax cross-entropy, e = (softmax(z) − onehot)/B.
* ``mse``: ½‖z − y‖² per example, e = (z − y)/B.
"""

from __future__ import annotations

import numpy as np

from .core.backend import array_module


def host_scalar(v):
    """A Python float on the CPU; on the GPU the 0-d device array itself, so
    that a training step does not wait for the device (``float(loss)``
    synchronises when the value is needed: progress line, divergence check)."""
    return float(v) if array_module(v) is np else v


def one_hot(y, n, dtype):
    xp = array_module(y)
    out = xp.zeros((y.shape[0], n), dtype=dtype)
    out[xp.arange(y.shape[0]), y] = 1
    return out


def softmax(z):
    xp = array_module(z)
    z = z - z.max(axis=1, keepdims=True)
    p = xp.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p


def cross_entropy(logits, y):
    """Softmax cross-entropy; ``y`` are integer labels."""
    xp = array_module(logits)
    B, n = logits.shape
    z = logits - logits.max(axis=1, keepdims=True)
    lse = xp.log(xp.exp(z).sum(axis=1))
    loss = host_scalar((lse - z[xp.arange(B), y]).mean())
    e = softmax(logits)
    e[xp.arange(B), y] -= 1
    e /= B
    return loss, e


def mse(logits, y):
    """½‖z − target‖² averaged over the batch.  ``y``: integer labels
    (one-hot targets) or a float array of targets with the logits' shape."""
    B, n = logits.shape
    target = one_hot(y, n, logits.dtype) if y.ndim == 1 else y
    diff = logits - target
    loss = host_scalar(0.5 * (diff * diff).sum() / B)
    return loss, diff / B


def per_example(loss_fn, logits, y):
    """Loss of every example (shape (B,)), for rules that need more than the
    batch mean (node perturbation's reward L̃ − L per example)."""
    xp = array_module(logits)
    B, n = logits.shape
    if loss_fn is mse:
        target = one_hot(y, n, logits.dtype) if y.ndim == 1 else y
        d = logits - target
        return 0.5 * (d * d).sum(axis=1)
    if loss_fn is cross_entropy:
        z = logits - logits.max(axis=1, keepdims=True)
        return xp.log(xp.exp(z).sum(axis=1)) - z[xp.arange(B), y]
    raise ValueError(f"no per-example form of loss {getattr(loss_fn, '__name__', loss_fn)!r}")


LOSSES = {"cross_entropy": cross_entropy, "mse": mse}


def error_rate(logits, y) -> float:
    """Classification error in percent (NaN for regression targets, e.g. an
    autoencoder's ``target: input``)."""
    if getattr(y, "ndim", 1) > 1:
        return float("nan")
    xp = array_module(logits)
    return float((xp.argmax(logits, axis=1) != y).mean()) * 100.0


def get(name: str):
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; known: {sorted(LOSSES)}") from None
