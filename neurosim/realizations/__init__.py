"""Registry of realizations: name -> class (one module each)."""

from __future__ import annotations

from .base import Realization
from .batched import Batched

REALIZATIONS: dict[str, type[Realization]] = {"batched": Batched}

__all__ = ["REALIZATIONS", "Realization"]
