"""The dynamics study's ideal grouped circuit against batched GEVB, from the same weights on
the same batches: largest weight difference (in units of lr) and cosine of the weight changes,
with the study's Adam and with SGD.

    NEUROSIM_DATA_DIR=... python docs/results/ideal_vs_batched.py [steps]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

from neurosim.protocol import validate_protocol
from neurosim.train import Run

STUDY = Path(__file__).resolve().parents[2] / "protocols" / "dynamics_study.yaml"
IDEAL = {"dt_ms": 1.0, "presentation_ms": 2.0, "settle_ms": 0.0, "interval_ms": 0.0, "replay": True,
         "neurons": {"model": "rate", "tau_m_ms": 0.0}, "code": {"rectify": False},
         "gating": {"tau_inh_ms": 0.0}, "eligibility": {"tau_e_ms": 0.0},
         "neuromodulator": {"delay_ms": 0.0, "tau_ms": 0.0, "noise": 0.0, "crosstalk": 0.0}}
OPTIMIZERS = ({"name": "adam", "lr": 3e-4, "betas": [0.9, 0.999], "eps": 1e-8}, {"name": "sgd", "lr": 3e-4})


def build(realization, optimizer):
    p = yaml.safe_load(STUDY.read_text())
    for k in ("sweep", "seeds"):
        p.pop(k, None)
    p.update(seed=0, realization=realization, optimizer=optimizer, recording={"out": "unused.zarr"})
    return Run(validate_protocol(p, path=STUDY))


def compare(g, b, w0, lr):
    pg = {(i, n): p for i, n, p in g.exp.net.parameters()}
    worst = dot = na = nb = 0.0
    for i, n, p in b.exp.net.parameters():
        k = (i, n)
        worst = max(worst, float(np.abs(pg[k].astype(np.float64) - p).max()))
        ug = (pg[k] - w0[k]).astype(np.float64).ravel()
        ub = (p - w0[k]).astype(np.float64).ravel()
        dot, na, nb = dot + ug @ ub, na + ug @ ug, nb + ub @ ub
    return worst, worst / lr, dot / np.sqrt(na * nb)


def main(steps: int = 20) -> None:
    for opt in OPTIMIZERS:
        g = build({"type": "grouped", "dynamics": IDEAL}, opt)
        b = build({"type": "batched"}, opt)
        w0 = {(i, n): p.copy() for i, n, p in b.exp.net.parameters()}
        rng = np.random.default_rng(0)
        for step in range(1, steps + 1):
            idx = rng.choice(g.exp.x_train.shape[0], 128, replace=False)
            x, y = g.exp.x_train[idx], g.exp.y_train[idx]
            g.exp.realization.step(x, y)
            b.exp.realization.step(x, y)
            if step in (1, steps):
                worst, rel, cos = compare(g, b, w0, opt["lr"])
                print(f"{opt['name']}: after {step} step(s): max |w_grouped - w_batched| = {worst:.3g} "
                      f"({rel:.3g} x lr); cosine of the weight changes {cos:.6f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
