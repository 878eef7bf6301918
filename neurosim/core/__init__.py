"""The floor everything stands on: array backend (NumPy | CuPy, dtype, named random streams),
fused kernels, process-wide host settings, and declared options (schemas, one validator)."""
