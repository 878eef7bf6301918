"""neurosim: simulation engine for credit assignment by a globally broadcast
error vector (GEVB) and its baselines, batched and as explicit circuits."""

__version__ = "0.1.0"
