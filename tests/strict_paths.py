"""The training paths run on the strict device (tests/strict_device.py), with their protocols
and a per-step count of host synchronisations."""

from __future__ import annotations

from neurosim import train
from neurosim.protocol import validate_protocol
from tests.strict_device import D2H, H2D, LOG, SYNC, strict_gpu

DENSE = [{"type": "dense", "units": 10}, {"type": "dense", "units": 6}]
CONV = [{"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2}, {"type": "dense", "units": 6}]
LC = [{"type": "locally_connected2d", "channels": 2, "kernel": 3, "stride": 1, "padding": 1},
      {"type": "avg_pool2d", "size": 2}, {"type": "dense", "units": 6}]
CNN = [{"type": "conv2d", "channels": 3, "kernel": 3, "stride": 1, "padding": 1},
       {"type": "max_pool2d", "size": 2}, {"type": "flatten"}, {"type": "dense", "units": 8},
       {"type": "dropout", "p": 0.5}]
CONVENTIONAL = {"vectorized": False, "sign": "mixed", "init": "he"}
DYN = {"dt_ms": 1.0, "presentation_ms": 6.0, "settle_ms": 2.0, "interval_ms": 4.0}


def dyn(model, **extra):
    return {"type": "grouped", "dynamics": {**DYN, "neurons": {"model": model},
                                            **({"code": {"rectify": True}} if model != "rate" else {}),
                                            **extra}}


#: name -> (circuit, rule, realization, extra protocol keys)
PATHS = {
    "fc_vnn_gevb": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"}, None, {}),
    "fc_vnn_bp": ({"vectorized": True, "layers": DENSE}, {"name": "bp"}, None, {}),
    "fc_vnn_fa": ({"vectorized": True, "layers": DENSE}, {"name": "fa"}, None, {}),
    "fc_dfa": ({**CONVENTIONAL, "layers": DENSE}, {"name": "dfa"}, None, {}),
    "fc_ifa": ({**CONVENTIONAL, "layers": DENSE}, {"name": "ifa"}, None, {}),
    "fc_sign_symmetry": ({**CONVENTIONAL, "layers": DENSE}, {"name": "sign_symmetry"}, None, {}),
    "fc_node_perturbation": ({**CONVENTIONAL, "layers": DENSE},
                             {"name": "node_perturbation", "noise": 0.01}, None, {}),
    "conv_vnn_gevb": ({"vectorized": True, "layers": CONV}, {"name": "gevb"}, None, {}),
    "conv_vnn_bp": ({"vectorized": True, "layers": CONV}, {"name": "bp"}, None, {}),
    "lc_vnn_gevb": ({"vectorized": True, "layers": LC}, {"name": "gevb"}, None, {}),
    "cnn_maxpool_dropout_np_dfa": ({**CONVENTIONAL, "nonlinearity": "relu", "layers": CNN},
                                   {"name": "node_perturbation", "style": "dfa"}, None, {}),
    "grouped": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"}, {"type": "grouped"}, {}),
    "temporal": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"},
                 {"type": "temporal", "gating": "first_bin"}, {}),
    "dynamics_rate": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"}, dyn("rate"), {}),
    "dynamics_poisson": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"}, dyn("poisson"), {}),
    "dynamics_lif": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"}, dyn("lif"), {}),
    "dynamics_temporal_rate": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"},
                               {"type": "temporal", "gating": "first_bin",
                                "dynamics": {**DYN, "neurons": {"model": "rate"}}}, {}),
}


def is_circuit(name) -> bool:
    return PATHS[name][2] is not None


#: whether a path's numbers are those of the CPU run (False: drawn by the device's generator)
def same_numbers_as_cpu(name) -> bool:
    return not any(k in name for k in ("node_perturbation", "np_dfa", "poisson"))


def recording(name, every=2) -> dict:
    """Recording of every kind a path has: weights, and trajectories (circuits) or metrics."""
    if is_circuit(name):
        return {"recording": {"weights": True, "trajectories": {
            "every": every, "samples": 2, "units": 3, "synapses": 4, "snapshot_every": every,
            "chunk": 2}}}
    return {"recording": {"weights": True}, "metrics": {"every": every}}


def protocol(name, out, steps=6, batch=8, epochs=1, **over):
    circuit, rule, real, extra = PATHS[name]
    raw = {
        "name": name,
        "circuit": circuit,
        "rule": rule,
        "data": {"dataset": "synthetic", "options": {"n_train": steps * batch, "n_test": 16,
                                                     "shape": [1, 6, 6]}},
        "optimizer": {"name": "adam", "lr": 1e-2},
        "training": {"epochs": epochs, "batch_size": batch, "eval_every": 1},
        "seed": 5,
        "dtype": "float64",
        "recording": {"out": str(out)},
        **extra,
    }
    if real is not None:
        raw["realization"] = real
    for k, v in over.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return validate_protocol(raw)


class StepLog:
    """Marks of :data:`LOG` at each training step's start and at each evaluation."""

    def __init__(self, run):
        self.marks = []  # (kind, step, mark)
        net, real = run.exp.net, run

        begin = net.begin_step

        def begin_step(step, epoch):
            self.marks.append(("step", step, LOG.mark()))
            return begin(step, epoch)

        net.begin_step = begin_step
        evaluate = real.evaluate

        def ev(*a, **k):
            self.marks.append(("eval", None, LOG.mark()))
            return evaluate(*a, **k)

        real.evaluate = ev
        check = real._check_weights

        def checked():
            self.marks.append(("eval", None, LOG.mark()))
            return check()

        real._check_weights = checked

    def steps(self, end: int):
        """``{step: events}`` of each training step (up to the next step or evaluation)."""
        out = {}
        marks = self.marks + [("end", None, end)]
        for (kind, step, m), (_, _, m2) in zip(marks, marks[1:]):
            if kind == "step":
                out[step] = LOG.events[m:m2]
        return out


def count(events, kind):
    return sum(1 for e in events if e[0] == kind)


def run_strict(p, resume=False, guard_every=None, **kw):
    """Train ``p`` on the strict device; returns (Run, RunSummary, per-step events)."""
    old = train.GUARD_EVERY
    if guard_every:
        train.GUARD_EVERY = guard_every
    try:
        with strict_gpu():
            start = LOG.mark()
            r = train.Run(p, device="gpu")
            steps = StepLog(r)
            s = r.train(resume=resume, **kw)
            return r, s, steps.steps(LOG.mark()), LOG.since(start)
    finally:
        train.GUARD_EVERY = old


def summary(steps: dict) -> dict:
    return {k: [count(ev, k) for ev in steps.values()] for k in (SYNC, D2H, H2D)}


if __name__ == "__main__":  # pragma: no cover - the table of docs/performance.md
    import sys
    import tempfile
    from collections import Counter

    names = sys.argv[1:] or list(PATHS)
    with tempfile.TemporaryDirectory() as d:
        for n in names:
            p = protocol(n, f"{d}/{n}.zarr")
            try:
                r, s, steps, allev = run_strict(p, guard_every=3)
            except Exception as exc:
                import traceback
                traceback.print_exc()
                print(n, "FAILED", type(exc).__name__, exc)
                continue
            print(n, summary(steps))
            c = Counter(f"{e[0]} {e[1]} at {e[2]}" for ev in steps.values() for e in ev)
            for k, v in c.most_common():
                print("   ", v, k)
