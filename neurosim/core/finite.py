"""Which arrays hold NaN or ±Inf, in one read from the device."""

from __future__ import annotations


def nonfinite(xp, named) -> list:
    """The names of the arrays of ``named`` (``(name, array)`` pairs; None arrays are skipped)
    that hold a NaN or an infinity, in order.  One device read when all are finite (on a GPU
    each read is a synchronisation), one more to name them otherwise."""
    named = [(name, a) for name, a in named if a is not None]
    if not named:
        return []
    finite = xp.stack([xp.isfinite(a).all() for _, a in named])
    if bool(finite.all()):
        return []
    return [name for (name, _), ok in zip(named, finite.tolist()) if not ok]
