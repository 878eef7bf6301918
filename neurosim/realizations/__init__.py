"""Registry of realizations: name -> class (one module each)."""

from __future__ import annotations

from .base import Realization
from .batched import Batched
from .grouped import Grouped
from .temporal import Temporal

REALIZATIONS: dict[str, type[Realization]] = {"batched": Batched, "grouped": Grouped,
                                                "temporal": Temporal}

__all__ = ["REALIZATIONS", "Realization"]
