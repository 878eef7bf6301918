"""Plain JSON values from what neurosim records (protocols, attrs, loop positions)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def jsonable(obj):
    """``obj`` as the plain JSON value it reads back as (a JSON round trip).

    NumPy scalars become Python numbers, NumPy arrays nested lists, paths strings; tuples
    become lists and mapping keys strings, as in JSON.  Anything else that JSON cannot hold
    is a ``TypeError`` naming its type.  Used wherever a value goes into a store's attrs or
    is compared with one read back from a store."""
    return json.loads(json.dumps(obj, default=_default))


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, os.PathLike)):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
