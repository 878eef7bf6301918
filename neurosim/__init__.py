"""neurosim: simulation engine for credit assignment by a globally broadcast
error vector (GEVB) and its baselines, batched and as explicit circuits."""

import os as _os

# Numba's parallel kernels run on an OpenMP pool whose threads spin-wait after
# each kernel by default; on a small machine they then steal the cores that
# OpenBLAS needs for the next matmul (measured: a GEVB step of the MNIST VNN
# 79 ms -> 53 ms on 2 cores with passive waiting).  A user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
