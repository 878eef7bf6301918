"""neurosim benchmark suite: ``python -m benchmarks`` (see benchmarks/README section in README.md)."""

import os as _os

#: OMP_WAIT_POLICY as the user set it, before ``import neurosim`` sets its
#: passive default: the PyTorch reference runs in a child process under the
#: user's own setting (see :func:`benchmarks.core.torch_child_env`).
USER_OMP_WAIT_POLICY = _os.environ.get("OMP_WAIT_POLICY")

if not _os.environ.get("NEUROSIM_BENCH_TORCH_CHILD"):
    # neurosim's OpenMP default, set before any thread pool starts (the torch
    # child skips it: torch must start its pool under the user's settings)
    import neurosim as _neurosim  # noqa: E402,F401
