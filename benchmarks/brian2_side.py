"""The Brian2 side of the comparisons: neurosim's circuits in time, written by hand in Brian2.

Runs in the Brian2 environment of :mod:`benchmarks.brian2_env` (Brian2 and NumPy only; it never
imports neurosim)::

    python brian2_side.py TASK IN.npz OUT.npz [--target numpy|cython]

Each task reads its weights, inputs and constants from ``IN.npz`` and writes its recordings to
``OUT.npz``.  Times are in ms and rates in Hz, as in neurosim; the step ``dt`` is Brian2's clock.
Brian2 runs its schedule once per step: every group's state update (slot ``groups``, in the
order given by ``order``; a summed variable is computed just before its target group), then
thresholds, resets and monitors (``end``).  The feed-forward circuits are ordered layer by
layer, so that a layer at step k sees the layer below at step k, as in neurosim, and every
state variable whose input is held over a step is integrated exactly (``method="exact"``).

Tasks:

* ``cascade``: the grouped circuit of rate neurons with inhibitory gating (neurosim's
  ``grouped`` circuit in time): layer l has K groups of n_l neurons, neuron (mu, i) driven by
  ``I = sum_j W[mu, i, j] pre[mu, j] + b[mu, i]`` (the first layer by the one input population);
  the inhibitory gate of group i relaxes toward ``Theta(sum_mu t[mu, i] I[mu, i])``; the rate
  relaxes toward ``max(G I, thr)``;
* ``lif``: leaky integrate-and-fire neurons ``tau_m dV/dt = -V + tau_m mu(t)``, threshold 1,
  reset 0, absolute refractory period;
* ``trace``: the neuromodulator (command, delay, low-pass, Ornstein-Uhlenbeck noise) and the
  eligibility traces of synapses, ``tau_e dE/dt = -E + pre G_post`` (``elig``: Brian2's
  ``exact`` integrator would read ``E`` as Euler's number), with the accumulated
  three-factor product ``sum_k dt M_k E_k``;
* ``poisson``: rate neurons emitting Poisson spikes at ``r0 + g a``;
* ``bench``: the study circuit 784-256-128-1 (K = 10, grouped) over whole trials, timed.
"""

from __future__ import annotations

import argparse
import time

import brian2 as b2
import numpy as np

ms, Hz, second = b2.ms, b2.Hz, b2.second


def _setup(target: str, dt_ms: float, seed: int = 0):
    b2.start_scope()
    b2.prefs.codegen.target = target
    b2.prefs.logging.file_log = False
    b2.prefs.logging.delete_log_on_exit = True
    b2.defaultclock.dt = dt_ms * ms
    b2.seed(seed)


def _scalar(d, k):
    return float(np.asarray(d[k]))


# ---------------------------------------------------------------------------------------------
# the grouped rate cascade with gating


def _layer(pre, pre_index, W, b, t, thr, tau_m, tau_inh, order, gated=True):
    """One layer of the grouped circuit: K groups of n neurons (index mu * n + i) and, when gated,
    n inhibitory gate neurons; ``pre_index(mu, j)`` is the presynaptic neuron of input j of
    component mu (the first layer: j, the one input population)."""
    K, n, n_in = W.shape
    eqs = """
    dv/dt = (clip(G * (I + b), thr, inf) - v) / tau_m : 1
    I : 1
    b : 1 (constant)
    """ + ("G : 1 (linked)" if gated else "G : 1 (constant)")
    neu = b2.NeuronGroup(K * n, eqs, method="exact", order=order + 5,
                         namespace={"tau_m": tau_m * ms, "thr": thr})
    neu.b = b.reshape(-1)
    mu, i, j = np.meshgrid(np.arange(K), np.arange(n), np.arange(n_in), indexing="ij")
    syn = b2.Synapses(pre, neu, "w : 1 (constant)\nI_post = w * v_pre : 1 (summed)")
    syn.connect(i=pre_index(mu, j).ravel(), j=(mu * n + i).ravel())
    syn.w = W.ravel()
    objs = [neu, syn]
    if gated:
        # the group's inhibitory neuron reads the group's input weighted by the gating vector t
        # (the same presynaptic neurons, through weights t[mu, i] W[mu, i, j]) and is active
        # when t . I < 0; its synapses onto the group (GABA-A, tau_inh) carry the gate G, which
        # relaxes toward theta = 1 - active
        inh = b2.NeuronGroup(n, """
            theta = int(gs + gb >= 0) : 1
            gs : 1
            gb : 1 (constant)
            """, order=order + 2)
        inh.gb = (t * b).sum(axis=0)
        gsyn = b2.Synapses(pre, inh, "tw : 1 (constant)\ngs_post = tw * v_pre : 1 (summed)")
        gsyn.connect(i=pre_index(mu, j).ravel(), j=i.ravel())
        gsyn.tw = (t[:, :, None] * W).ravel()
        gate = b2.NeuronGroup(n, """
            dG/dt = (theta - G) / tau_inh : 1
            theta : 1 (linked)
            """, method="exact", order=order + 3, namespace={"tau_inh": tau_inh * ms})
        gate.theta = b2.linked_var(inh, "theta")
        gate.G = 1.0  # gates open at rest
        neu.G = b2.linked_var(gate, "G", index=np.tile(np.arange(n), K))
        objs += [inh, gsyn, gate]
    else:
        gate = None
        neu.G = 1.0
    return neu, gate, objs


def cascade(d: dict, target: str) -> dict:
    dt = _scalar(d, "dt_ms")
    _setup(target, dt)
    x = np.asarray(d["x"], dtype=float)  # (T, n0)
    T, n0 = x.shape
    n_layers = int(d["n_layers"])
    xin = b2.TimedArray(x, dt=dt * ms)
    inp = b2.NeuronGroup(n0, "v = xin(t, i) : 1")
    objs, mons = [inp], {}
    pre, pre_index = inp, (lambda mu, j: j)
    for layer in range(n_layers):
        W, b = d[f"W{layer}"], d[f"b{layer}"]
        gated = f"t{layer}" in d
        neu, gate, o = _layer(pre, pre_index, W, b, d[f"t{layer}"] if gated else None,
                              _scalar(d, "thr"), _scalar(d, "tau_m_ms"), _scalar(d, "tau_inh_ms"),
                              10 * (layer + 1), gated)
        objs += o
        mons[f"a{layer}"] = b2.StateMonitor(neu, "v", record=True, when="end")
        if gate is not None:
            mons[f"G{layer}"] = b2.StateMonitor(gate, "G", record=True, when="end")
        n = W.shape[1]
        pre, pre_index = neu, (lambda mu, j, n=n: mu * n + j)
    net = b2.Network(*objs, *mons.values())
    net.run(T * dt * ms)
    out = {}
    for k, m in mons.items():
        v = np.asarray(m.v if k.startswith("a") else m.G).T  # (T, neurons)
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# LIF neurons under a deterministic drive


def lif(d: dict, target: str) -> dict:
    dt = _scalar(d, "dt_ms")
    _setup(target, dt)
    mu = np.asarray(d["mu"], dtype=float)  # (T, N) Hz
    T, N = mu.shape
    drive = b2.TimedArray(mu * Hz, dt=dt * ms)
    neu = b2.NeuronGroup(N, """
        dV/dt = (tau_m * drive(t, i) - V) / tau_m : 1 (unless refractory)
        """, threshold="V >= 1", reset="V = 0", refractory=_scalar(d, "refractory_ms") * ms,
        method="exact", namespace={"tau_m": _scalar(d, "tau_m_ms") * ms, "drive": drive})
    spk = b2.SpikeMonitor(neu)
    b2.run(T * dt * ms)
    return {"i": np.asarray(spk.i), "step": np.round(np.asarray(spk.t / ms) / dt).astype(np.int64)}


# ---------------------------------------------------------------------------------------------
# the neuromodulator and the eligibility traces


def trace(d: dict, target: str) -> dict:
    """Channels ``ch`` of the neuromodulator and synapses from ``n_pre`` presynaptic neurons to
    ``n_post`` postsynaptic gates; synapse (j, i) belongs to channel ``chan[i]``."""
    dt = _scalar(d, "dt_ms")
    _setup(target, dt, int(d.get("seed", 0)))
    u = np.asarray(d["u"], dtype=float)  # (T, ch) command
    T, ch = u.shape
    cmd = b2.TimedArray(u, dt=dt * ms)
    tau_M, sigma = _scalar(d, "tau_M_ms"), _scalar(d, "sigma")
    # command -> delay -> low-pass (exact), plus an Ornstein-Uhlenbeck noise of standard deviation
    # sigma and correlation time tau_M (Euler-Maruyama: Brian2 has no exact stochastic integrator)
    noise = b2.NeuronGroup(ch, "dnz/dt = -nz / tau_M + sigma * sqrt(2 / tau_M) * xi : 1",
                           method="euler", order=0, namespace={"tau_M": tau_M * ms, "sigma": sigma})
    mod = b2.NeuronGroup(ch, """
        dMf/dt = (ud - Mf) / tau_M : 1
        ud = cmd(t - delay, i) : 1 (constant over dt)
        M = Mf + nz : 1
        nz : 1 (linked)
        """, method="exact", order=1, namespace={"cmd": cmd, "delay": _scalar(d, "delay_ms") * ms,
                                                   "tau_M": tau_M * ms})
    mod.nz = b2.linked_var(noise, "nz")
    mM = b2.StateMonitor(mod, ["M", "Mf"], record=True, when="end")
    objs = [noise, mod, mM]
    out = {}
    if "pre" in d:
        pre, post = np.asarray(d["pre"], float), np.asarray(d["post"], float)  # (T, n_pre), (T, n_post)
        ta_pre = b2.TimedArray(pre, dt=dt * ms)
        ta_post = b2.TimedArray(post, dt=dt * ms)
        P = b2.NeuronGroup(pre.shape[1], "r = ta_pre(t, i) : 1")
        Q = b2.NeuronGroup(post.shape[1], "G = ta_post(t, i) : 1\nM : 1", order=3)
        # each postsynaptic neuron receives the neuromodulator of its channel
        route = b2.Synapses(mod, Q, "M_post = M_pre : 1 (summed)")
        route.connect(i=np.asarray(d["chan"], dtype=np.int64), j=np.arange(post.shape[1]))
        S = b2.Synapses(P, Q, """
            delig/dt = (r_pre * G_post - elig) / tau_e : 1 (clock-driven)
            acc : 1
            """, method="exact", order=4, namespace={"tau_e": _scalar(d, "tau_e_ms") * ms})
        S.connect()  # all to all
        # the three-factor product on the step grid: sum_k dt M_k E_k (end-of-step values)
        S.run_regularly("acc += (dt / ms) * M_post * elig", when="end", order=-1)
        mE = b2.StateMonitor(S, "elig", record=True, when="end")
        objs += [P, Q, route, S, mE]
    net = b2.Network(*objs)
    net.run(T * dt * ms)
    out.update(M=np.asarray(mM.M).T, Mf=np.asarray(mM.Mf).T)
    if "pre" in d:
        out.update(E=np.asarray(mE.elig).T, acc=np.asarray(S.acc), syn_pre=np.asarray(S.i),
                   syn_post=np.asarray(S.j))
    return out


# ---------------------------------------------------------------------------------------------
# Poisson neurons


def poisson(d: dict, target: str) -> dict:
    """Rate neurons ``tau_m da/dt = -a + drive`` firing at ``r0 + g a`` (Brian2's stochastic
    threshold: at most one spike per step, probability r dt); spike counts per window."""
    dt = _scalar(d, "dt_ms")
    _setup(target, dt, int(d.get("seed", 0)))
    drv = np.asarray(d["drive"], dtype=float)  # (T, N)
    T, N = drv.shape
    ta = b2.TimedArray(drv, dt=dt * ms)
    neu = b2.NeuronGroup(N, """
        da/dt = (ta(t, i) - a) / tau_m : 1
        rate = r0 + g * a : Hz
        """, threshold="rand() < rate * dt", method="exact",
        namespace={"ta": ta, "tau_m": _scalar(d, "tau_m_ms") * ms, "r0": _scalar(d, "r0") * Hz,
                   "g": _scalar(d, "g") * Hz})
    spk = b2.SpikeMonitor(neu)
    b2.run(T * dt * ms)
    win = int(d["window"])  # steps per counting window
    step = np.round(np.asarray(spk.t / ms) / dt).astype(np.int64)
    counts = np.zeros((T // win, N), dtype=np.int64)
    np.add.at(counts, (step // win, np.asarray(spk.i)), 1)
    return {"counts": counts}


TASKS = {"cascade": cascade, "lif": lif, "trace": trace, "poisson": poisson}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="brian2_side.py")
    ap.add_argument("task", choices=sorted(TASKS) + ["bench"])
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--target", default="numpy", choices=("numpy", "cython"))
    a = ap.parse_args(argv)
    with np.load(a.inp) as f:
        d = {k: f[k] for k in f.files}
    t0 = time.perf_counter()
    if a.task == "bench":
        res = bench(d, a.target)
    else:
        res = TASKS[a.task](d, a.target)
    res["wall_s"] = time.perf_counter() - t0
    res["brian2_version"] = np.asarray(b2.__version__)
    res["target"] = np.asarray(a.target)
    np.savez(a.out, **res)
    return 0


def bench(d: dict, target: str) -> dict:  # defined below the tasks it reuses
    raise NotImplementedError


if __name__ == "__main__":
    raise SystemExit(main())
