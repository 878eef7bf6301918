"""Early learning of DFA vs BP on a conventional 784-256-256-10 net (Adam 3e-4, batch 128).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/dfa_early_learning.py

Prints the test error (%, 2,000 test images of MNIST from $NEUROSIM_DATA_DIR) after
50/150/300 steps, for the paired gate (t = +1/-1, the paper's conventional units) and
a plain ReLU.
"""

import numpy as np

from neurosim import losses
from neurosim.core.backend import Backend
from neurosim.data import load_dataset
from neurosim.model.network import build_network
from neurosim.optim import build_optimizer
from neurosim.rules import build_rule


def main():
    ds = load_dataset("mnist", train_subset=20000, test_subset=2000)
    X, Y = ds.x_train.reshape(len(ds.x_train), -1), ds.y_train
    Xt = ds.x_test.reshape(len(ds.x_test), -1)
    for rule in ("dfa", "bp"):
        for relu in (False, True):
            be = Backend(dtype="float32", seed=0)
            spec = {"vectorized": False, "sign": "mixed", "init": "he", "gating": "paired",
                    "layers": [{"type": "dense", "units": 256}, {"type": "dense", "units": 256}]}
            if relu:
                spec["nonlinearity"] = "relu"
            net = build_network(spec, be, (784,), 10)
            r = build_rule(rule, net, be)
            opt = build_optimizer(net, {"name": "adam", "lr": 3e-4})
            errs = []
            for step in range(300):
                idx = np.random.default_rng(step).integers(0, len(X), 128)
                opt.step(r.step(net, X[idx], Y[idx], losses.cross_entropy).grads)
                if step in (49, 149, 299):
                    logits, _ = net.forward(Xt)
                    errs.append(round(float((logits.argmax(1) != ds.y_test).mean() * 100), 1))
            print(rule, "relu" if relu else "gate+-", errs, flush=True)


if __name__ == "__main__":
    main()
