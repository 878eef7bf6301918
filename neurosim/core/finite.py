"""Non-finite values in a run: which arrays hold NaN or ±Inf (in one read from the device),
and the divergence error that names them."""

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


class DivergenceError(RuntimeError):
    """NaN/Inf in the loss or the weights."""


def check_parameters(xp, parameters, at: str) -> None:
    """DivergenceError naming the first non-finite parameter of ``parameters`` (``(layer,
    name, array)`` triples, e.g. ``Network.parameters()``) ``at`` a point of the run."""
    bad = nonfinite(xp, [((i, name), p) for i, name, p in parameters])
    if bad:
        raise DivergenceError(f"non-finite parameter at {at}: first non-finite value in layer "
                              f"{bad[0][0]} parameter {bad[0][1]}")


def diverged(xp, loss, states, parameters, at: str) -> DivergenceError:
    """The error of a non-finite ``loss`` ``at`` a step: it names the first non-finite quantity
    of the forward pass that produced it (layer, pre-activation h or activation a, of
    ``states``) and the parameters that are non-finite after the update::

        non-finite loss (nan) at step S (epoch E, batch B): first non-finite value in layer L
        pre-activation h; non-finite parameters after the update: layer 0 W
    """
    where = nonfinite(xp, [(f"layer {i} {label}", getattr(st, q, None)) for i, st in enumerate(states)
                           for q, label in (("h", "pre-activation h"), ("a", "activation a"))])
    params = [f"layer {i} {name}" for i, name in nonfinite(xp, [((i, n), p) for i, n, p in parameters])]
    return DivergenceError(f"non-finite loss ({loss}) at {at}: first non-finite value in "
                           f"{where[0] if where else 'the loss (the forward pass is finite)'}; non-finite "
                           f"parameters after the update: {', '.join(params) or 'none'}")
