"""Mean rates per weight layer and the bias of the decoded logits at initialisation: the
spiking circuits (Poisson, LIF) against the rate circuit, on the study circuit
(protocols/dynamics_grouped_mnist.yaml), one presentation of the first B training images.

    NEUROSIM_DATA_DIR=... python docs/results/spiking_rates.py rate,poisson,lif [B] ['{"code": {...}}']
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from neurosim.protocol import load_protocol
from neurosim.realizations.dynamics.neurons import TRAIN_STREAM
from neurosim.train import Run

PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "dynamics_grouped_mnist.yaml"


def main(models, B=64, extra=None):
    ref = None
    for model in models:
        dyn = {"neurons": {"model": model}, **(extra or {})}
        p = load_protocol(PROTOCOL, {"realization": {"dynamics": dyn},
                                     "recording": {"trajectories": None, "out": "unused.zarr"}})
        run = Run(p)
        d = run.exp.realization.dynamics
        runs = d.simulate(run.exp.x_train[:B], (TRAIN_STREAM, 1, 0))
        logits = d.decode(runs[-1])
        rates = ", ".join(f"{float(r.mean_rate):.2f}" for r in runs)
        line = f"{model}: mean rate per layer (Hz) {rates}"
        if ref is not None and model != "rate":
            diff = logits - ref
            line += f"; decoded logit bias {diff.mean():+.3f} ± {diff.std() / np.sqrt(diff.size):.3f}"
        if model == "rate":
            ref = logits
        print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(","), int(sys.argv[2]) if len(sys.argv) > 2 else 64,
         json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)
