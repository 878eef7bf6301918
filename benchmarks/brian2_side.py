"""The Brian2 side of the comparisons: neurosim's circuits in time, written by hand in Brian2.

Runs in the Brian2 environment of :mod:`benchmarks.brian2_env` (Brian2 and NumPy only; it never
imports neurosim)::

    python brian2_side.py TASK IN.npz OUT.npz [--target numpy|cython|cpp_standalone]
    python brian2_side.py --serve    # tasks read from stdin, one process for all (see serve)

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
* ``poisson``: rate neurons emitting spikes at ``r0 + g a`` (a stochastic threshold);
* ``bench``: the grouped circuit in time (the benchmark's study circuit 784-256-128-1, K = 10)
  over whole trials, timed.

Two things Brian2 does not allow are worked around: a synapse cannot read a linked variable of
its target, so the gate and the neuromodulator reach the neurons that the synapses read through
one-to-one summed variables; and the ``exact`` integrator cannot treat ``int(...)`` of a
condition, so the inhibitory neuron's step function is a subexpression of its own group.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

import brian2 as b2
import numpy as np

ms, Hz = b2.ms, b2.Hz


def _setup(target: str, dt_ms: float, seed: int = 0, threads: int = 0):
    b2.start_scope()
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = threads
    else:
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
    dv/dt = (G * (I + b) - v) / tau_m : 1
    r = clip(v, thr, inf) : 1
    I : 1
    b : 1 (constant)
    """ + ("G : 1 (linked)" if gated else "G : 1 (constant)")
    neu = b2.NeuronGroup(K * n, eqs, method="exact", order=order + 5,
                         namespace={"tau_m": tau_m * ms, "thr": thr})
    neu.b = b.reshape(-1)
    mu, i, j = np.meshgrid(np.arange(K), np.arange(n), np.arange(n_in), indexing="ij")
    syn = b2.Synapses(pre, neu, "w : 1 (constant)\nI_post = w * r_pre : 1 (summed)",
                      namespace={"thr": thr})
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
        gsyn = b2.Synapses(pre, inh, "tw : 1 (constant)\ngs_post = tw * r_pre : 1 (summed)",
                           namespace={"thr": thr})
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
    inp = b2.NeuronGroup(n0, "r = xin(t, i) : 1", namespace={"xin": xin})
    objs, mons = [inp], {}
    pre, pre_index = inp, (lambda mu, j: j)
    for layer in range(n_layers):
        W, b = d[f"W{layer}"], d[f"b{layer}"]
        gated = f"t{layer}" in d
        neu, gate, o = _layer(pre, pre_index, W, b, d[f"t{layer}"] if gated else None,
                              _scalar(d, "thr"), _scalar(d, "tau_m_ms"), _scalar(d, "tau_inh_ms"),
                              10 * (layer + 1), gated)
        objs += o
        mons[f"a{layer}"] = b2.StateMonitor(neu, "r", record=True, when="end")
        if gate is not None:
            mons[f"G{layer}"] = b2.StateMonitor(gate, "G", record=True, when="end")
        n = W.shape[1]
        pre, pre_index = neu, (lambda mu, j, n=n: mu * n + j)
    net = b2.Network(*objs, *mons.values())
    net.run(T * dt * ms)
    out = {}
    for k, m in mons.items():
        v = np.asarray(m.r if k.startswith("a") else m.G).T  # (T, neurons)
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
        P = b2.NeuronGroup(pre.shape[1], "r = ta_pre(t, i) : 1", namespace={"ta_pre": ta_pre})
        Q = b2.NeuronGroup(post.shape[1], "G = ta_post(t, i) : 1\nM : 1", order=3,
                           namespace={"ta_post": ta_post})
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




def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="brian2_side.py")
    ap.add_argument("task", choices=sorted(TASKS))
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--target", default="numpy", choices=("numpy", "cython", "cpp_standalone"))
    a = ap.parse_args(argv)
    run_task(a.task, a.inp, a.out, a.target)
    return 0


def run_task(task: str, inp: str, out: str, target: str) -> None:
    """Task ``task`` on the inputs of ``inp``; its outputs written to ``out``."""
    with np.load(inp) as f:
        d = {k: f[k] for k in f.files}
    t0 = time.perf_counter()
    res = TASKS[task](d, target)
    res["wall_s"] = time.perf_counter() - t0
    res["brian2_version"] = np.asarray(b2.__version__)
    res["target"] = np.asarray(target)
    np.savez(out, **res)


#: the first word of the lines ``serve`` answers with (anything else on stdout is Brian2's)
REPLY = "@neurosim-brian2"


def serve() -> int:
    """Tasks one after another in this process (Brian2 imported once): each line of stdin is
    ``TASK IN.npz OUT.npz TARGET`` (tab-separated), answered by a line ``@neurosim-brian2 ok`` or
    ``@neurosim-brian2 error MESSAGE`` on stdout.  Runtime targets only (numpy, cython)."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            task, inp, out, target = line.rstrip("\n").split("\t")
            if task not in TASKS or target not in ("numpy", "cython"):
                raise ValueError(f"cannot serve task {task!r} with target {target!r}")
            run_task(task, inp, out, target)
            reply = "ok"
        except Exception as exc:  # reported to the caller, the next task still runs
            traceback.print_exc()
            reply = "error " + " ".join(f"{type(exc).__name__}: {exc}".split())
        print(REPLY, reply, flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# the benchmark: the study circuit over whole trials


def bench(d: dict, target: str) -> dict:
    """The grouped circuit in time (784-n1-n2-1, K groups) over ``n_trials`` trials of ``slot``
    steps: presentation and replay with the stimulus on, then the rest interval.  Every step
    integrates every neuron, inhibitory neuron and gate, the neuromodulator's K channels (command
    during the replay's counting window, delay, low-pass) and every synapse's eligibility trace
    and three-factor product ``sum dt M E``.  ``model`` rate: the layers above read the rates;
    poisson: every layer's neurons emit spikes at ``r0 + g a`` (stochastic threshold) and the
    layers above read the synaptically filtered spike trains through event-driven synapses.
    Returns the wall time of the timed run (after a one-step run that generates and compiles the
    code) and the sizes simulated."""
    dt = _scalar(d, "dt_ms")
    _setup(target, dt, 0, int(d.get("threads", 0)))
    x = np.asarray(d["x"], dtype=float)  # (n_trials, n0) stimuli (activity units)
    n_trials, n0 = x.shape
    slot, n_bin, n_settle = int(d["slot"]), int(d["n_bin"]), int(d["n_settle"])
    n_layers, K = int(d["n_layers"]), int(d["K"])
    spiking = str(d["model"]) == "poisson"
    r0, g, thr = _scalar(d, "r0"), _scalar(d, "g"), _scalar(d, "thr")
    ns = {"tau_m": _scalar(d, "tau_m_ms") * ms, "tau_inh": _scalar(d, "tau_inh_ms") * ms,
          "tau_e": _scalar(d, "tau_e_ms") * ms, "tau_syn": _scalar(d, "tau_syn_ms") * ms,
          "tau_M": _scalar(d, "tau_M_ms") * ms, "delay": _scalar(d, "delay_ms") * ms,
          "thr": thr, "r0": r0 * Hz, "g": g * Hz}
    # the stimulus: on during the presentation and the replay, off in the interval
    on_steps = np.zeros(slot)
    on_steps[:2 * n_bin] = 1.0
    ns["stim"] = b2.TimedArray(x, dt=slot * dt * ms)
    ns["on"] = b2.TimedArray(np.tile(on_steps, n_trials), dt=dt * ms)
    # the command: channel mu carries eps_mu during the replay's counting window
    cmd = np.zeros((n_trials, slot, K))
    cmd[:, n_bin + n_settle:2 * n_bin] = np.asarray(d["eps"], dtype=float)[:, None, :]
    ns["cmd"] = b2.TimedArray(cmd.reshape(-1, K), dt=dt * ms)
    mod = b2.NeuronGroup(K, """
        dM/dt = (ud - M) / tau_M : 1
        ud = cmd(t - delay, i) : 1 (constant over dt)
        """, method="exact", order=0, namespace=ns)
    inp = b2.NeuronGroup(n0, "o = stim(t, i) * on(t) : 1", namespace=ns)
    objs = [mod, inp]
    pre, pre_index, pre_spiking = inp, (lambda mu, j: j), False
    n_syn = 0
    for layer in range(n_layers):
        W, b = np.asarray(d[f"W{layer}"], float), np.asarray(d[f"b{layer}"], float)
        Kw, n, n_in = W.shape
        gated = f"t{layer}" in d
        base = 10 * (layer + 1)
        mu, i, j = np.meshgrid(np.arange(K), np.arange(n), np.arange(n_in), indexing="ij")
        src, tgt = pre_index(mu, j).ravel(), (mu * n + i).ravel()
        # the input current: summed from rates, or event-driven from spikes (filtered with tau_syn;
        # the baseline r0 of the presynaptic trains is taken out of the bias)
        if pre_spiking:
            drive_eqs = "dIs/dt = -Is / tau_syn : 1\nI = Is : 1"
            bias = b - r0 / g * W.sum(axis=2)
        else:
            drive_eqs = "I : 1"
            bias = b
        eqs = f"""
        dv/dt = (G * (I + b) - v) / tau_m : 1
        va = clip(v, thr, inf) : 1
        {drive_eqs}
        b : 1 (constant)
        M : 1
        G : 1
        """
        kw = {}
        if spiking:
            eqs += "ds/dt = -s / tau_syn : Hz\no = (s - r0) / g : 1\n"
            kw = {"threshold": "rand() < (r0 + g * va) * dt", "reset": "s += 1 / tau_syn"}
        else:
            eqs += "o = va : 1\n"
        neu = b2.NeuronGroup(K * n, eqs, method="exponential_euler" if pre_spiking else "exact",
                             order=base + 5, namespace=ns, **kw)
        neu.b = bias.reshape(-1)
        if spiking:
            neu.s = r0 * Hz
        if pre_spiking:
            neu.Is = (r0 / g * W.sum(axis=2)).reshape(-1)
            syn = b2.Synapses(pre, neu, """
                w : 1 (constant)
                delig/dt = (o_pre * G_post - elig) / tau_e : 1 (clock-driven)
                acc : 1
                """, on_pre="Is_post += w / (g * tau_syn)", method="exact", order=base + 6, namespace=ns)
        else:
            syn = b2.Synapses(pre, neu, """
                w : 1 (constant)
                I_post = w * o_pre : 1 (summed)
                delig/dt = (o_pre * G_post - elig) / tau_e : 1 (clock-driven)
                acc : 1
                """, method="exact", order=base + 6, namespace=ns)
        syn.connect(i=src, j=tgt)
        syn.w = W.ravel()
        syn.run_regularly("acc += (dt / ms) * M_post * elig", when="end")
        n_syn += len(src)
        route = b2.Synapses(mod, neu, "M_post = M_pre : 1 (summed)", namespace=ns)  # channel mu -> group mu
        route.connect(i=np.repeat(np.arange(K), n), j=np.arange(K * n))
        objs += [neu, syn, route]
        if gated:
            t = np.asarray(d[f"t{layer}"], float)
            if pre_spiking:
                inh_eqs = "dgs/dt = -gs / tau_syn : 1\n"
                gb = (t * bias).sum(axis=0)
            else:
                inh_eqs = "gs : 1\n"
                gb = (t * b).sum(axis=0)
            inh = b2.NeuronGroup(n, inh_eqs + "theta = int(gs + gb >= 0) : 1\ngb : 1 (constant)",
                                 method="exact", order=base + 2, namespace=ns)
            inh.gb = gb
            tw = (t[:, :, None] * W).ravel()
            if pre_spiking:
                inh.gs = (r0 / g * (t[:, :, None] * W).sum(axis=(0, 2)))
                gsyn = b2.Synapses(pre, inh, "tw : 1 (constant)", on_pre="gs_post += tw / (g * tau_syn)",
                                   namespace=ns)
            else:
                gsyn = b2.Synapses(pre, inh, "tw : 1 (constant)\ngs_post = tw * o_pre : 1 (summed)",
                                   namespace=ns)
            gsyn.connect(i=src, j=i.ravel())
            gsyn.tw = tw
            gate = b2.NeuronGroup(n, "dG/dt = (theta - G) / tau_inh : 1\ntheta : 1 (linked)",
                                  method="exact", order=base + 3, namespace=ns)
            gate.theta = b2.linked_var(inh, "theta")
            gate.G = 1.0
            # the gate of group i reaches its K neurons (a linked variable would not be visible to
            # the synapses' eligibility traces)
            gin = b2.Synapses(gate, neu, "G_post = G_pre : 1 (summed)", namespace=ns)
            gin.connect(i=np.tile(np.arange(n), K), j=np.arange(K * n))
            objs += [inh, gsyn, gate, gin]
        else:
            neu.G = 1.0
        pre, pre_index, pre_spiking = neu, (lambda mu, j, n=n: mu * n + j), spiking
    spikes = b2.SpikeMonitor(pre) if spiking else None  # the readout's spikes (decoded by counts)
    net = b2.Network(*objs, *([spikes] if spikes is not None else []))
    total = n_trials * slot * dt * ms
    t0 = time.perf_counter()
    if target == "cpp_standalone":
        # one C++ program: generated, compiled (make: only what changed since the last build in
        # the same directory) and run; Brian2 times its main loop itself
        net.run(total)
        b2.device.build(directory=str(d["standalone_dir"]), compile=True, run=True, with_output=False)
        wall = float(b2.device._last_run_time)
        t_build = time.perf_counter() - t0 - wall
    else:
        net.run(dt * ms)  # generates (and with cython compiles, or loads from its cache) the code
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        net.run(total - dt * ms)
        wall = time.perf_counter() - t0
    return {"run_s": wall, "build_s": t_build, "n_trials": n_trials, "n_steps": n_trials * slot,
            "n_synapses": n_syn, "readout_spikes": -1 if spikes is None else int(spikes.num_spikes)}


TASKS = {"cascade": cascade, "lif": lif, "trace": trace, "poisson": poisson, "bench": bench}

if __name__ == "__main__":
    raise SystemExit(serve() if sys.argv[1:] == ["--serve"] else main())
