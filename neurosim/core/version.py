"""The package version (one place; ``neurosim.__version__`` and store provenance read it)."""

VERSION = "0.1.0"
