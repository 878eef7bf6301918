"""The per-evaluation records of a run, appended along ``epoch`` at every checkpoint.

Every variable is declared once in :data:`VARIABLES` with its long_name and units; weight
snapshots ``W_<layer>`` (optional) carry named dimensions per layer.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.options import Field, Section

#: name -> (long_name, units) of the scalar records along ``epoch``
VARIABLES = {
    "train_error": ("training-set error", "%"),
    "test_error": ("test-set error", "%"),
    "train_loss": ("training-set loss", "1"),
    "test_loss": ("test-set loss", "1"),
    "train_batch_loss": ("mean mini-batch loss since the previous checkpoint", "1"),
    "n_steps": ("optimizer steps so far", "step"),
    "wall_time": ("wall-clock training time so far", "s"),
}


class EpochRecords:
    """Builds one record (an :class:`xarray.Dataset` of length 1 along ``epoch``)."""

    #: the protocol's ``recording:`` section (trajectories join it)
    OPTIONS = Section({
        "out": Field(str, default=None, nullable=True,
                     doc="the run's store (default: runs/<name>.zarr)"),
        "weights": Field(bool, default=False, doc="record parameter snapshots W_<layer>, b_<layer> "
                                                   "along epoch (neurosim.load at any checkpoint)"),
        "weights_every": Field(int, default=1, min=1, units="checkpoint",
                               doc="checkpoints between weight snapshots"),
    }, doc="what the run's store records")

    def __init__(self, net, backend, options: dict):
        self.net, self.backend = net, backend
        self.weights = bool(options["weights"])
        self.weights_every = int(options["weights_every"])

    def record(self, metrics: dict, n_steps: int, wall_time: float, epoch: float,
               n_prev: int) -> xr.Dataset:
        """``metrics``: train/test error and loss, mean batch loss; ``epoch``: epochs completed
        (fractional for a cut-short epoch); ``n_prev``: records already in the store."""
        values = dict(metrics, n_steps=n_steps, wall_time=wall_time)
        data = {k: ("epoch", np.asarray([values[k]]), {"long_name": ln, "units": u})
                for k, (ln, u) in VARIABLES.items()}
        if self.weights:
            # every record has every variable (else the store's variables disagree on the
            # length of epoch and it does not open); between snapshots W is NaN, which is
            # Zarr's fill value, so those chunks are not even written
            snap = n_prev % self.weights_every == 0
            for i, name, p in self.net.parameters():
                v = self.backend.to_host(p)
                v = v if snap else np.full_like(v, np.nan)
                if name == "W":
                    if v.ndim == 3 and self.net.layers[i].first:
                        dims = ("epoch", "component", f"post_{i}", f"pre_{i}")
                    else:
                        dims = ("epoch", f"post_{i}", f"pre_{i}") if v.ndim == 2 else \
                            ("epoch",) + tuple(f"w{i}_{k}" for k in range(v.ndim))
                    long_name = f"weights of layer {i}"
                else:  # biases (K, units) of dense layers; generic dims otherwise
                    dense = v.ndim == 2 and v.shape[0] == self.net.K and \
                        v.shape[1] == self.net.layers[i].n_units
                    dims = ("epoch", "component", f"post_{i}") if dense else \
                        ("epoch",) + tuple(f"{name}{i}_{k}" for k in range(v.ndim))
                    long_name = f"{'biases' if name == 'b' else name} of layer {i}"
                data[f"{name}_{i}"] = (dims, v[None], {"long_name": long_name, "units": "1"})
        return xr.Dataset(data, coords={"epoch": ("epoch", [float(epoch)],
                                                  {"long_name": "training epochs completed",
                                                   "units": "epoch"})})
