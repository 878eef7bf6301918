"""Noise added to the training inputs (``training.input_noise``)."""

from __future__ import annotations

#: sub-stream tag of the "noise" stream for ``training.input_noise``
INPUT_NOISE_STREAM = 3


def corrupt(x, sigma: float, backend, step: int):
    """The training inputs of step ``step`` with Gaussian noise added, x̃ = x + σξ,
    ξ ~ N(0, I) (the denoising autoencoder's corruption, Vincent et al. 2008; Lansdell
    et al. 2020, appendix C.2, σ = 0.3).  ξ is drawn on the run's device from
    ``backend.device_rng("noise", 3, step)`` (on the CPU: ``backend.rng``'s numbers; sub-stream
    3 of the noise stream: node perturbation uses 1, dropout 2), keyed by the step, so a
    resumed run draws the same noise.  ``x`` is not modified."""
    rng = backend.device_rng("noise", INPUT_NOISE_STREAM, step)  # no host draw per step
    return x + backend.asarray(sigma * rng.standard_normal(x.shape))
