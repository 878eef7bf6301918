"""neurosim benchmark suite: ``python -m benchmarks`` (see benchmarks/README section in README.md)."""
