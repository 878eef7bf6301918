"""Alignment of a rule's learning signal with the true gradient (paper §4, appendix E).

Notation: for hidden weight layer ℓ with activations a^ℓ of shape (B, K, *units),

* the *true* learning signal is the backpropagated ∂L/∂a^ℓ (exact BP, eq. 3);
* a rule's learning signal δ^ℓ is its estimate of the same quantity, *before*
  the layer's own derivative-of-nonlinearity term: BP ∂L/∂a^ℓ itself, FA the
  backward pass through fixed feedback matrices, DFA ``B^ℓ e`` (eq. 5), GEVB
  the broadcast error vector ``δ[b,μ,i] = e[b,μ]`` (eq. 9).

The alignment angle of appendix E is, per example b, the angle between the
rule's δ^ℓ_b and ∂L/∂a^ℓ_b (flattened over components and units), averaged
over the mini-batch.  Leaving out φ'(h^ℓ) is the same as assuming every
postsynaptic unit is active (Launay et al.).  For GEVB in a VNN,
∂L/∂a^ℓ[b,μ,i] = δ̂^ℓ[b,i] e[b,μ] (eq. 12), so the angle is the angle between
δ̂^ℓ_b and the constant vector 1 (eq. A4): ``cos θ = mean_i δ̂_i / rms_i δ̂_i``,
and ``tan θ = r = std(δ̂)/mean(δ̂)`` (eq. A7-A8).  For conventional (K = 1)
dense layers the signal angle equals the angle between per-example weight
updates with all units active.

The signals come from the rule itself: :meth:`~neurosim.rules.base.Rule.error_signals`
(δ^ℓ, for the angles) and :meth:`~neurosim.rules.base.Rule.learning_signals`
(g^ℓ, the factor its update multiplies in, for the per-example sign match).
When a metric needs a signal the rule does not declare, :func:`step_metrics`
raises :class:`~neurosim.rules.base.UndeclaredError` naming the rule rather
than recording NaN.

All functions are pure and written against the array module of their inputs
(NumPy or CuPy).
"""

from __future__ import annotations

import math

import numpy as np

from ..core.backend import array_module, to_host
from ..rules.base import UndeclaredError, weight_grads
from ..rules.base import backward_pass as backward_signals  # (g, ∂L/∂a) of BP, eq. 3


def true_signals(net, states, e) -> dict:
    """∂L/∂a^ℓ for every hidden weight layer ℓ (exact backpropagation)."""
    _, da = backward_signals(net, states, e)
    return {i: da[i] for i in net.hidden_weight_layers}


def delta_hat(net, states) -> dict:
    """δ̂^ℓ[b, *units] = ∂a^L_μ/∂a^ℓ_{iμ} of a vectorized network (eq. 12-13).

    Computed by backpropagating a unit error vector (δ̂^L = 1): the K-by-K
    Jacobian is δ̂ I (eq. 12), so every component of ∂(Σ_μ a^L_μ)/∂a^ℓ equals δ̂;
    the component mean is returned.  Needs one vector output unit.
    """
    if net.n_out != 1:
        raise ValueError("δ̂ is defined for vectorized networks (one vector output unit)")
    xp = array_module(states[-1].h)
    B = states[-1].h.shape[0]
    ones = xp.ones((B, net.K), dtype=states[-1].h.dtype)
    _, da = backward_signals(net, states, ones)
    return {i: da[i].mean(axis=1) for i in net.hidden_weight_layers}


def rule_signals(rule, net, states, e):
    """The rule's δ^ℓ ≈ ∂L/∂a^ℓ (no φ' term) per hidden weight layer
    (:meth:`~neurosim.rules.base.Rule.error_signals`), or None when the rule
    does not declare them."""
    try:
        return rule.error_signals(net, states, e)
    except UndeclaredError:
        return None


# --------------------------------------------------------------------------
# angles and relative standard deviation
# --------------------------------------------------------------------------
def example_angles(u, v):
    """Per-example angle (degrees) between ``u[b]`` and ``v[b]`` (flattened).

    NaN where either vector is zero.
    """
    xp = array_module(u)
    B = u.shape[0]
    u2, v2 = u.reshape(B, -1), v.reshape(B, -1)
    dot = (u2 * v2).sum(axis=1)
    nu = xp.sqrt((u2 * u2).sum(axis=1))
    nv = xp.sqrt((v2 * v2).sum(axis=1))
    den = nu * nv
    with np.errstate(invalid="ignore", divide="ignore"):
        c = xp.where(den > 0, dot / xp.where(den > 0, den, 1), xp.nan)
    return xp.degrees(xp.arccos(xp.clip(c, -1.0, 1.0)))


def angle(u, v) -> float:
    """Angle (degrees) between two arrays taken as flat vectors; NaN if one is 0.

    Sums in the arrays' own dtype (float32 keeps ~0.05° resolution near 0)."""
    xp = array_module(u)
    u, v = u.ravel(), v.ravel()
    uv, uu, vv = (float(xp.dot(u, v)), float(xp.dot(u, u)), float(xp.dot(v, v)))
    den = math.sqrt(uu) * math.sqrt(vv)
    if den == 0:
        return math.nan
    return math.degrees(math.acos(min(1.0, max(-1.0, uv / den))))


def relative_std(dh):
    """r = std_i(δ̂_i)/mean_i(δ̂_i) per example (eq. A5), population std."""
    B = dh.shape[0]
    d = dh.reshape(B, -1)
    m = d.mean(axis=1)
    s = d.std(axis=1)
    xp = array_module(dh)
    with np.errstate(invalid="ignore", divide="ignore"):
        return xp.where(m != 0, s / xp.where(m != 0, m, 1), xp.nan)


def predicted_angle(r):
    """θ = atan(r) in degrees (appendix E, eq. A8)."""
    return array_module(r).degrees(array_module(r).arctan(r))


def gevb_angle(dh):
    """GEVB alignment angle per example from δ̂: cos θ = mean δ̂ / rms δ̂ (eq. A4)."""
    xp = array_module(dh)
    B = dh.shape[0]
    d = dh.reshape(B, -1)
    rms = xp.sqrt((d * d).mean(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = xp.where(rms > 0, d.mean(axis=1) / xp.where(rms > 0, rms, 1), xp.nan)
    return xp.degrees(xp.arccos(xp.clip(c, -1.0, 1.0)))


# --------------------------------------------------------------------------
# sign match
# --------------------------------------------------------------------------
def sign_match(update, grad) -> float:
    """Fraction of entries with a nonzero true gradient whose update has the
    same sign (sec. 3.3).  NaN if the gradient is zero everywhere."""
    n = int((grad != 0).sum())
    if n == 0:
        return math.nan
    same = int(((update > 0) & (grad > 0)).sum()) + int(((update < 0) & (grad < 0)).sum())
    return same / n


def example_sign_match(layer, a_in, g_rule, g_true, examples) -> float:
    """Mean over ``examples`` (indices) of the per-example weight sign match.

    The per-example update and gradient are ``layer.grads`` on one example
    (any layer kind), so this costs two weight-gradient evaluations per
    example; it runs on metric steps only.
    """
    vals = []
    for b in examples:
        sl = slice(int(b), int(b) + 1)
        u = layer.grads(a_in[sl], g_rule[sl])["W"]
        t = layer.grads(a_in[sl], g_true[sl])["W"]
        vals.append(sign_match(u, t))
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def dense_block_sample(layer, n_weights: int, seed: int = 0):
    """Random post units I and pre units J of a dense layer with |I|·|J| ≈
    ``n_weights`` (every unit when W is no larger, or ``n_weights`` = 0).

    The block I × J (× all K components for the first layer, whose I × J is
    then ≈ ``n_weights``/K) is the sample of
    weights the per-example sign match looks at: every weight is in it with
    the same probability, and gathering whole rows/columns keeps the cost at
    one small batched matmul.  Fixed by ``seed``: every metric step looks at
    the same weights.
    """
    n_post, n_pre = layer.n_units, layer.n_in
    if layer.first and n_weights > 0:  # W[μ, i, j]: the block covers all K components
        n_weights = max(1, n_weights // layer.K)
    if n_weights <= 0 or n_post * n_pre <= n_weights:
        return np.arange(n_post), np.arange(n_pre)
    rng = np.random.default_rng(seed)
    k_post = int(min(n_post, max(1, round(math.sqrt(n_weights)))))
    k_pre = int(min(n_pre, max(1, -(-n_weights // k_post))))
    I = np.sort(rng.choice(n_post, k_post, replace=False))
    J = np.sort(rng.choice(n_pre, k_pre, replace=False))
    return I, J


def dense_example_sign_match(layer, a_in, g_rule, g_true, block) -> float:
    """Per-example sign match of a dense layer on the weights of ``block``
    (post units I × pre units J, see :func:`dense_block_sample`), all examples
    at once (no loop), mean over examples.

    The per-example update of a shared W[i, j] is Σ_μ g[b,μ,i] a[b,μ,j]; of
    the first layer's W[μ, i, j] it is g[b,μ,i] x[b,j] (SPEC §1).
    """
    xp = array_module(a_in)
    B = a_in.shape[0]
    I, J = (xp.asarray(ix) for ix in block)
    if layer.first:
        x = a_in.reshape(B, -1)[:, J][:, None, None, :]
        u = g_rule[:, :, I][..., None] * x
        t = g_true[:, :, I][..., None] * x
    else:
        a = a_in.reshape(B, a_in.shape[1], -1)[:, :, J]
        u = xp.matmul(g_rule[:, :, I].transpose(0, 2, 1), a)
        t = xp.matmul(g_true[:, :, I].transpose(0, 2, 1), a)
    u, t = u.reshape(B, -1), t.reshape(B, -1)
    n = to_host((t != 0).sum(axis=1))
    agree = to_host((((u > 0) & (t > 0)) | ((u < 0) & (t < 0))).sum(axis=1))
    ok = n > 0
    return float((agree[ok] / n[ok]).mean()) if ok.any() else math.nan


# --------------------------------------------------------------------------
# one metric step
# --------------------------------------------------------------------------
def step_metrics(net, rule, result, *, alignment=True, delta_hat_stats=True, sign_match_on=True,
                 examples=8, per_example=False, sign_match_weights=4096) -> dict:
    """All per-layer credit-assignment metrics of one step (arrays over weight layers).

    ``result`` is the rule's :class:`~neurosim.rules.base.StepResult` taken
    *before* the optimizer step (states, e, the rule's update ``grads``).
    Returns a dict of host arrays indexed like ``net.weight_layers`` (the
    readout last, whose update is exact for every rule: angle 0, sign match 1
    up to zeros, r = 0).  Keys: ``alignment_angle``, ``alignment_angle_std``,
    ``update_angle``, ``r``, ``predicted_angle``, ``sign_match_example``,
    ``sign_match_batch`` and, with ``per_example``, ``alignment_angle_example``
    (layers × examples).

    Per-example sign match: for dense layers over all examples of the batch on
    a random block of about ``sign_match_weights`` entries of W (rows × columns;
    all entries when W is no larger; 0 = all), vectorized; for other layer
    kinds over the first
    ``examples`` examples and all entries, through ``layer.grads``.

    The rule's signals are its declared ones: ``alignment`` needs
    :meth:`~neurosim.rules.base.Rule.error_signals`, ``sign_match_on``
    :meth:`~neurosim.rules.base.Rule.learning_signals`; a rule without them
    raises :class:`~neurosim.rules.base.UndeclaredError`.
    """
    states, e = result.states, result.e
    layers = net.weight_layers
    hidden = net.hidden_weight_layers
    nL = len(layers)
    nan = np.full(nL, np.nan)
    out = {}
    if alignment or sign_match_on:
        gs_true, da_true = backward_signals(net, states, e)
    B = e.shape[0]
    ex = np.arange(min(int(examples), B))
    if alignment:
        sig = rule.error_signals(net, states, e)
        mean, std = nan.copy(), nan.copy()
        per = np.full((nL, len(ex)), np.nan)
        for k, i in enumerate(hidden):
            th = to_host(example_angles(sig[i], da_true[i])).astype(np.float64)
            if np.isfinite(th).any():
                mean[k], std[k] = np.nanmean(th), np.nanstd(th)
            per[k] = th[ex]
        mean[-1], std[-1] = 0.0, 0.0
        per[-1] = 0.0
        out["alignment_angle"], out["alignment_angle_std"] = mean, std
        if per_example:
            out["alignment_angle_example"] = per
        ua = nan.copy()
        true_grads = weight_grads(net, states, gs_true, layers)
        for k, i in enumerate(layers):
            if (i, "W") in result.grads:
                ua[k] = angle(result.grads[(i, "W")], true_grads[(i, "W")])
        out["update_angle"] = ua
    else:
        true_grads = None
    if delta_hat_stats and net.n_out == 1:
        dh = delta_hat(net, states)
        r, pa = nan.copy(), nan.copy()
        for k, i in enumerate(hidden):
            rb = to_host(relative_std(dh[i])).astype(np.float64)
            if np.isfinite(rb).any():
                r[k] = np.nanmean(rb)
                pa[k] = np.nanmean(np.degrees(np.arctan(rb)))
        r[-1], pa[-1] = 0.0, 0.0
        out["r"], out["predicted_angle"] = r, pa
    if sign_match_on:
        if true_grads is None:
            true_grads = weight_grads(net, states, gs_true, layers)
        sb, se = nan.copy(), nan.copy()
        g_rules = rule.learning_signals(net, states, e)
        for k, i in enumerate(layers):
            if (i, "W") in result.grads:
                sb[k] = sign_match(result.grads[(i, "W")], true_grads[(i, "W")])
            g_rule = g_rules[i]
            L = net.layers[i]
            if L.kind == "dense":
                block = dense_block_sample(L, sign_match_weights, seed=i)
                se[k] = dense_example_sign_match(L, states[i].a_in, g_rule, gs_true[i], block)
            else:
                se[k] = example_sign_match(L, states[i].a_in, g_rule, gs_true[i], ex)
        out["sign_match_batch"], out["sign_match_example"] = sb, se
    return out
