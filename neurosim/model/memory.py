"""Memory a run needs, from layer shapes alone (no weights, no data).

Used when a protocol is validated (refuse, with the estimate, what cannot fit) and when a run
chooses its evaluation batch (as many examples per forward pass as fit in the budget).
"""

from __future__ import annotations

import math

#: evaluation batches are at most this large (larger ones gain no speed)
MAX_EVAL_BATCH = 2000
#: fraction of the available memory a run budgets by default
DEFAULT_FRACTION = 0.5


def available() -> int | None:
    """Bytes of memory available now (MemAvailable, else free physical pages), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def budget(gib: float | None) -> int | None:
    """The run's memory budget in bytes: ``gib`` if given, else a fraction of what is available."""
    if gib is not None:
        return int(gib * (1 << 30))
    avail = available()
    return None if avail is None else int(avail * DEFAULT_FRACTION)


def _n(v) -> int:
    return math.prod(v) if isinstance(v, tuple) else int(v.size)


def per_example(layers, K: int, in_shape, itemsize: int) -> int:
    """Bytes of the activations of one example through all layers (input, h and a)."""
    return itemsize * (K * math.prod(in_shape) + 2 * sum(K * math.prod(L.unit_shape) for L in layers))


def estimate(layers, K: int, in_shape, itemsize: int, *, copies: int = 1, optimizer_state: int = 2,
             batch_size: int = 128, eval_batch: int = 0) -> dict:
    """Bytes by part: parameters (with gradient and optimizer state; ``copies`` of each, as the
    grouped circuit's K synapse copies), one training batch (forward states and learning
    signals), one evaluation batch."""
    params = sum(_n(v) for L in layers for v in L.params.values())
    ex = per_example(layers, K, in_shape, itemsize)
    out = {
        "parameters": params * itemsize * copies * (2 + optimizer_state),
        "training batch": 2 * ex * batch_size,
        "evaluation batch": ex * eval_batch,
    }
    out["total"] = sum(out.values())
    return out


def eval_batch_size(layers, K: int, in_shape, itemsize: int, budget_bytes: int | None, **kw) -> int:
    """The largest evaluation batch (≤ :data:`MAX_EVAL_BATCH`) that fits in the budget beside
    the parameters and a training batch; at least 1."""
    if budget_bytes is None:
        return MAX_EVAL_BATCH
    fixed = estimate(layers, K, in_shape, itemsize, eval_batch=0, **kw)["total"]
    ex = per_example(layers, K, in_shape, itemsize)
    return int(max(1, min(MAX_EVAL_BATCH, (budget_bytes - fixed) // max(ex, 1))))
