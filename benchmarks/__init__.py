"""neurosim benchmark suite: ``python -m benchmarks`` (see benchmarks/README section in README.md)."""

import os as _os

#: OMP_WAIT_POLICY as the user set it, before neurosim's host settings set its
#: passive default: the PyTorch reference runs in a child process under the
#: user's own setting (see :func:`benchmarks.core.torch_child_env`).
USER_OMP_WAIT_POLICY = _os.environ.get("OMP_WAIT_POLICY")

if not _os.environ.get("NEUROSIM_BENCH_TORCH_CHILD"):
    # the benchmarks opt in to neurosim's host settings (neurosim/core/host.py), as the
    # ``neurosim`` command does, before NumPy is imported and any thread pool starts (the
    # torch child skips them: torch must start its pool under the user's settings)
    from neurosim.core import host as _host  # noqa: E402

    _host.configure()
