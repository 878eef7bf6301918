"""Analysis of run stores (reads stores only; never writes them)."""
