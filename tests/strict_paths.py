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
    "autoencoder_np_ridge": ({**CONVENTIONAL, "layers": [
        {"type": "dense", "units": 6, "nonlinearity": "tanh"},
        {"type": "dense", "units": 2, "nonlinearity": "identity"}],
        "output": {"units": 36, "nonlinearity": "relu"}},
        {"name": "node_perturbation", "noise": 0.1, "solver": "ridge"}, None,
        {"loss": "mse", "data_options": {"target": "input"}}),
    "grouped": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"}, {"type": "grouped"}, {}),
    "temporal": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"},
                 {"type": "temporal", "gating": "first_bin"}, {}),
    "grouped_no_relaxation": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"},
                              {"type": "grouped", "relaxation": {"schedule": "never"}}, {}),
    "temporal_external_mse_online": ({"vectorized": True, "layers": DENSE}, {"name": "gevb"},
                                     {"type": "temporal", "gating": "external",
                                      "error_timing": "mse_online"}, {"loss": "mse"}),
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
    circuit, rule, real, _ = PATHS[name]
    dyn = (real or {}).get("dynamics") or {}
    return not (rule["name"] == "node_perturbation" or dyn.get("neurons", {}).get("model") == "poisson"
                or any(ls["type"] == "dropout" for ls in circuit["layers"]))


def recording(name, every=2) -> dict:
    """Recording of every kind a path has: weights, and trajectories (circuits) or metrics."""
    if is_circuit(name):
        return {"recording": {"weights": True, "trajectories": {
            "every": every, "samples": 2, "units": 3, "synapses": 4, "snapshot_every": every,
            "chunk": 2}}}
    return {"recording": {"weights": True}, "metrics": {"every": every, "feedback_every": every}}


def protocol(name, out, steps=6, batch=8, epochs=1, **over):
    circuit, rule, real, extra = PATHS[name]
    extra = dict(extra)
    raw = {
        "name": name,
        "circuit": circuit,
        "rule": rule,
        "data": {"dataset": "synthetic", "options": {"n_train": steps * batch, "n_test": 8,
                                                     "shape": [1, 6, 6],
                                                     **extra.pop("data_options", {})}},
        "optimizer": {"name": "adam", "lr": 1e-2},
        "training": {"epochs": epochs, "batch_size": batch, "eval_every": 1,
                     "eval_train_subset": 8},
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
        StepLog.last = self

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


def steps(p, device, n=None):
    """Build ``p`` on ``device`` and take ``n`` training steps as the loop takes them (without
    the store); returns the experiment and each step's events."""
    from neurosim import experiment

    exp = experiment.build(p, device)
    B = p["training"]["batch_size"]
    n = n or exp.steps_per_epoch
    perm = exp.backend.xp.asarray(exp.backend.rng("data", 0).permutation(exp.n_train))
    out = []
    loss_sum = 0.0
    for s in range(n):
        m = LOG.mark()
        idx = perm[s * B:(s + 1) * B]
        exp.net.begin_step(s + 1, 0)
        res = exp.realization.step(exp.x_train[idx], exp.y_train[idx])
        exp.net.end_step()
        loss_sum += res.loss
        out.append(LOG.since(m))
    return exp, out


def run_strict(p, resume=False, guard_every=None, progress=None, **kw):
    """Train ``p`` on the strict device with the training loop and its store; returns the Run,
    its summary and ``{step: events}``."""
    old = train.GUARD_EVERY
    if guard_every:
        train.GUARD_EVERY = guard_every
    try:
        with strict_gpu():
            r = train.Run(p, device="gpu", progress=progress)
            log = StepLog(r)
            s = r.train(resume=resume, **kw)
            return r, s, log.steps(LOG.mark())
    finally:
        train.GUARD_EVERY = old


def table(every=4, n_steps=8) -> str:  # pragma: no cover - the table of docs/performance.md
    """Host synchronisations, device->host and host->device copies per training step of each
    path (guard every 3 steps here, recording every ``every`` steps and at step 1)."""
    import tempfile

    rows = ["| path | ordinary step | guard step | recording step | epoch end |",
            "|---|---|---|---|---|"]

    def cell(evs):
        c = [max(count(ev, k) for ev in evs) if evs else 0 for k in (SYNC, D2H, H2D)]
        return "–" if not evs else "/".join(str(x) for x in c)

    with tempfile.TemporaryDirectory() as d:
        for n in PATHS:
            p = protocol(n, f"{d}/{n}.zarr", steps=n_steps, **recording(n, every))
            r, s, st = run_strict(p, guard_every=3)
            rec_steps = {1} | {k for k in st if k % every == 0}
            guard = {k for k in st if k % 3 == 0 or k == n_steps}
            plain = [ev for k, ev in st.items() if k not in rec_steps | guard]
            g = [ev for k, ev in st.items() if k in guard - rec_steps]
            rec = [ev for k, ev in st.items() if k in rec_steps - guard]
            marks = StepLog.last.marks
            last_step = max(m for kind, _, m in marks if kind == "step")
            start = min(m for kind, _, m in marks if kind == "eval" and m > last_step)
            end = LOG.events[start:LOG.mark()]  # evaluation, records, checkpoint, finish
            rows.append(f"| {n} | {cell(plain)} | {cell(g)} | {cell(rec)} | {cell([end])} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(table())
