"""The Brian2 column of ``python -m benchmarks``: the same circuit in time, written in Brian2.

For a workload of the grouped circuit with dynamics (rate or Poisson neurons), the network that
neurosim just timed (its weights, gating vectors, dt, trial layout, time constants, baseline and
gain) is handed to ``benchmarks/brian2_side.py`` (task ``bench``), which builds it in Brian2 and
simulates ``trials`` trials of the first examples of the workload's data, one after the other,
in Brian2's own environment (:mod:`benchmarks.brian2_env`).  Brian2 integrates every neuron,
gate and neuromodulator channel and every synapse's eligibility trace and three-factor product
at every step of every trial: the forward dynamics with eligibility traces.  It does not decode
the readout or compute the error (the neuromodulator is commanded with given errors), and does
not update the weights, so its column is a lower bound on what neurosim's training step does.

Trials per second are compared with neurosim's examples per second (one example is one trial,
and a neurosim step simulates a mini-batch of them); simulated seconds per wall-clock second
are ``trial duration x trials per second`` on both sides.
"""

from __future__ import annotations

import numpy as np

from . import brian2_env


def supported(workload) -> str | None:
    """None when the workload has a Brian2 column, else why not."""
    real = workload.realization
    if real.get("type") != "grouped" or real.get("dynamics") is None:
        return "Brian2 column: grouped circuits in time only"
    model = (real["dynamics"].get("neurons") or {}).get("model", "rate")
    if model not in ("rate", "poisson"):
        return f"Brian2 column: no Brian2 model for {model} neurons"
    if (real["dynamics"].get("neurons") or {}).get("input_spikes"):
        return "Brian2 column: no Brian2 model for spiking input"
    return None


def inputs(realization, x, trials: int, seed: int = 0) -> dict:
    """The ``bench`` task's inputs for a built grouped realization with dynamics and data ``x``."""
    dyn = realization.dynamics
    be = realization.backend
    net = realization.net
    tl = dyn.tl
    o = dyn.opts
    h = (lambda a: np.asarray(be.to_host(a), dtype=np.float64))
    x2 = h(x[:trials]).reshape(trials, -1)
    code, K, layers = o["code"], net.K, list(realization.layers)
    r0, g = code["baseline_hz"], code["gain_hz"]
    out = {"x": x2, "dt_ms": tl.dt, "slot": tl.slot, "n_bin": tl.n_bin, "n_settle": tl.n_settle,
           "K": K, "n_layers": len(layers), "model": o["neurons"]["model"],
           "r0": r0, "g": g, "thr": -r0 / g if code["rectify"] else -1e30,
           "tau_m_ms": o["neurons"]["tau_m_ms"], "tau_syn_ms": o["neurons"]["tau_syn_ms"],
           "tau_inh_ms": o["gating"]["tau_inh_ms"], "tau_e_ms": o["eligibility"]["tau_e_ms"],
           "tau_M_ms": o["neuromodulator"]["tau_ms"], "delay_ms": o["neuromodulator"]["delay_ms"],
           # the error vectors that command the neuromodulator (their values do not change the cost)
           "eps": np.random.default_rng(seed).normal(0, 0.1, (trials, K))}
    for pos, i in enumerate(layers):
        out[f"W{pos}"], out[f"b{pos}"] = h(realization.w(i)), h(realization.b(i))
        if i != net.readout:
            out[f"t{pos}"] = h(net.t[i]).reshape(K, -1)
    return out


def run(realization, x, trials: int = 2, target: str = "cpp_standalone", threads: int = 1) -> dict:
    """Time the Brian2 model of ``realization`` on ``trials`` trials; its row of the table:
    trials/s, simulated s/wall s, and what Brian2 simulated.  ``{"skipped": why}`` when the
    Brian2 environment cannot be created (package index unreachable)."""
    d = inputs(realization, x, trials)
    if target == "cpp_standalone":  # the program's directory, kept: a rebuild compiles what changed
        # (one per thread count: the thread count is written into headers, and Brian2's makefile
        # does not rebuild the objects that include them, which then crash the program)
        shape = "-".join(str(d[f"W{p}"].shape[1]) for p in range(int(d["n_layers"])))
        d["standalone_dir"] = str(brian2_env.env_dir().parent / "brian2-standalone"
                                  / f"grouped-{d['model']}-{d['K']}x{shape}-{threads}threads")
        d["threads"] = threads
    try:
        r = brian2_env.run("bench", d, target=target)
    except brian2_env.Unavailable as exc:
        return {"skipped": str(exc)}
    run_s = float(r["run_s"])
    tl = realization.dynamics.tl
    trial_s = tl.slot * tl.dt * 1e-3
    return {"brian2_version": str(r["brian2_version"]), "target": str(r["target"]), "trials": trials,
            "threads": threads if target == "cpp_standalone" else 1,
            "run_s": run_s, "codegen_s": float(r["build_s"]), "n_synapses": int(r["n_synapses"]),
            "trials_per_s": trials / run_s, "sim_s_per_wall_s": trials * trial_s / run_s,
            # spiking: the readout's spikes over all trials (rate neurons: None)
            "readout_spikes": None if int(r["readout_spikes"]) < 0 else int(r["readout_spikes"])}
