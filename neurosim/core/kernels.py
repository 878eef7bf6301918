"""Fused kernels: Numba on the CPU, CuPy on the GPU, a NumPy/xp reference path.

NumPy evaluates expressions such as ``p -= lr * m / (sqrt(v) + eps)`` or the
gate ``Θ(Σ_μ t_μ h_μ) h`` as chains of temporaries, each a full pass over
memory.  The kernels here make one pass.  Every kernel has a reference
implementation written against ``xp`` (NumPy or CuPy, no Python loop over
examples); it is used

* when Numba is disabled (``NEUROSIM_NUMBA=0``) or missing,
* for inputs the Numba kernel does not take (non-contiguous, mixed dtypes),
* on the GPU where no CuPy kernel is written (CuPy runs the xp code as is),

and the tests (``tests/test_kernels.py``) check that both paths agree
(float64: exactly or to 1e-12).

Kernels
-------
``adam_update``   one Adam step in place (m, v, p in one pass).  CuPy: ElementwiseKernel.
``gate``          vector gating nonlinearity, eq. 7-8: G = Θ(Σ_μ t_μ h_μ), a = G h (also
                  over a conv layer's channel-last memory, returning views of the same layout).
``contract_components``  P[b, j] = Σ_μ e[b, μ] a[b, μ, j]: the presynaptic factor of
                  the GEVB update of a shared weight (eq. 9, ΔW = −GᵀP).
``add_bias_cl``, ``avg_pool_cl``  a convolution's bias and s×s average pooling over
                  channel-last memory, on all cores (NumPy's numbers bit for bit).
``im2col_nhwc``   the im2col matrix of a channel-last convolution input, its zero padding
                  included (one parallel copy instead of a padded copy and a serial one).
``relax``         the exponential relaxation of the circuit dynamics along a time course,
                  y_k = (1 − a) x_k + a y_{k−1}, one pass over chunks of neurons that stay in
                  cache (reference: the step loop of ``realizations.dynamics.timeline.relax``,
                  equalled bit for bit).

The gate and the contraction also have CuPy ``ElementwiseKernel`` versions
(one launch each; ``tests/test_gpu.py`` compares them with the CPU).
"""

from __future__ import annotations

import numpy as np

from .backend import array_module, numba_enabled

# --------------------------------------------------------------------------
# Numba kernels, compiled on first use (cache=True keeps them across runs)

_NUMBA: dict = {}

#: arrays with fewer elements run the serial (single-thread) variant of a
#: kernel: a parallel launch costs more than it saves below this size, and
#: far more when the cores are oversubscribed.
PARALLEL_MIN = 1 << 20

#: neurons per chunk of the relaxation kernel (16-32 KiB of each array: in L1/L2 over the steps)
RELAX_CHUNK = 4096

#: kernels whose parallel variant pays off on smaller arrays.  Adam's serial loop does
#: not vectorize (about 3 ns per element on this project's 2-core machine) while the
#: parallel one does (0.3 ns with two threads, and still vectorized with one): measured
#: break-even near 4096 elements.  The variants are elementwise and bit-identical.
PARALLEL_MIN_OF = {"adam": 1 << 12}


def _kernel_functions(prange) -> dict:
    """The kernels as plain Python functions looping with ``prange``.

    Built twice: with ``range`` (serial) and ``numba.prange`` (parallel).  The
    loop function is a closure variable, so the two variants get different
    keys in Numba's on-disk cache (whose key ignores the ``parallel`` flag).
    """

    def adam_flat(p, g, m, v, b1, a1, b2, a2, eps, step, inv_sqrt_c2, tiny):
        # every scalar arrives in p's dtype (a1 = 1 − b1, a2 = 1 − b2): no float64
        # promotion in float32 runs, and the loop vectorizes.  Moments that decay below
        # tiny (the smallest normal number) become 0 (see adam_update)
        for k in prange(p.size):
            gk = g[k]
            mk = b1 * m[k] + a1 * gk
            vk = b2 * v[k] + a2 * (gk * gk)
            mk = mk * (abs(mk) >= tiny)  # a product, not a branch: the loop stays vectorized
            vk = vk * (vk >= tiny)
            m[k] = mk
            v[k] = vk
            p[k] -= step * mk / (np.sqrt(vk) * inv_sqrt_c2 + eps)

    def gate_bku(h, t, a, G):
        # h, a: (B, K, U); t: (K, U); G: (B, U).  The sum over μ runs in the same
        # order as NumPy's reduction along axis 1 (sequential in μ), so the gate
        # equals the reference bit for bit.
        B, K, U = h.shape
        for b in prange(B):
            s = np.empty(U, dtype=h.dtype)
            for u in range(U):
                s[u] = h[b, 0, u] * t[0, u]
            for k in range(1, K):
                for u in range(U):
                    s[u] += h[b, k, u] * t[k, u]
            for u in range(U):
                G[b, u] = 1.0 if s[u] >= 0 else 0.0
            for k in range(K):
                for u in range(U):
                    a[b, k, u] = h[b, k, u] * G[b, u]

    def gate_bskc(h, t, a, G):
        # channel-last memory: h, a (B, S, K, C) with S = H·W positions; t (K, C);
        # G (B, S, C).  Same arithmetic order as gate_bku (sequential in μ).
        B, S, K, C = h.shape
        for b in prange(B):
            s = np.empty(C, dtype=h.dtype)
            for p in range(S):
                for c in range(C):
                    s[c] = h[b, p, 0, c] * t[0, c]
                for k in range(1, K):
                    for c in range(C):
                        s[c] += h[b, p, k, c] * t[k, c]
                for c in range(C):
                    G[b, p, c] = 1.0 if s[c] >= 0 else 0.0
                for k in range(K):
                    for c in range(C):
                        a[b, p, k, c] = h[b, p, k, c] * G[b, p, c]

    def contract_bkj(e, a, P):
        # P[b, j] = Σ_μ e[b, μ] a[b, μ, j], sequential in μ
        B, K, J = a.shape
        for b in prange(B):
            for j in range(J):
                P[b, j] = e[b, 0] * a[b, 0, j]
            for k in range(1, K):
                ek = e[b, k]
                for j in range(J):
                    P[b, j] += ek * a[b, k, j]

    def relax_snm(x, c1, ca, ia, tiny, y):
        # y[s, k] = x[s, k | 0] * c1 + y_prev * ca along (s, k) (the first step adds ia instead);
        # each product rounded, then the sum, as NumPy's multiply and in-place add do; a result
        # below tiny in magnitude (subnormal) is multiplied by 0, as flush_subnormal
        # does.  The neurons (axis 2) run in chunks that stay in cache over the time course.
        S, N, M = x.shape
        n_bin = y.shape[1]
        n_chunks = (M + RELAX_CHUNK - 1) // RELAX_CHUNK
        for c in prange(n_chunks):
            lo = c * RELAX_CHUNK
            hi = min(M, lo + RELAX_CHUNK)
            for s in range(S):
                for k in range(n_bin):
                    kx = k if N > 1 else 0
                    if s == 0 and k == 0:
                        for j in range(lo, hi):
                            v = x[0, kx, j] * c1 + ia
                            y[0, 0, j] = v * (abs(v) >= tiny)
                    elif k > 0:
                        for j in range(lo, hi):
                            v = x[s, kx, j] * c1 + y[s, k - 1, j] * ca
                            y[s, k, j] = v * (abs(v) >= tiny)
                    else:  # the segments follow each other without reset
                        for j in range(lo, hi):
                            v = x[s, kx, j] * c1 + y[s - 1, n_bin - 1, j] * ca
                            y[s, 0, j] = v * (abs(v) >= tiny)

    def poisson_cdf(ls, us, p0, terms, cnt):
        # cnt[i] = #{1 <= k <= terms : us[i] >= F_k} with F_0 = p0[i] = exp(-ls[i]), p_k =
        # p_{k-1} * (ls[i] / k), F_k = F_{k-1} + p_k: the rounding steps of poisson()'s array
        # loop, per sample.  F only grows (p >= 0), so the count stops at the first k with
        # us[i] < F_k; most samples stop at k = 1 or 2 instead of running all the terms.
        for i in prange(ls.size):
            lam = ls[i]
            u = us[i]
            p = p0[i]
            F = p
            c = 0
            for k in range(1, terms + 1):
                p *= lam / k
                F += p
                if u < F:
                    break
                c += 1
            cnt[i] = c

    def im2col_nhwc(x, C, sh, sw, ph, pw, cols):
        # x (N, H, W·C) and cols (N, Ho, Wo, kh, kw·C) are flat views of channel-last memory:
        # cols[n, y, u, dy, dx·C + c] = x[n, y·sh + dy − ph, (u·sw + dx − pw)·C + c], zero
        # outside x (the zero padding and the window copy in one pass, no arithmetic).  A
        # window row inside x is one contiguous run of kw·C values.
        N, H, WC = x.shape
        W = WC // C
        Ho, Wo, kh, kwC = cols.shape[1], cols.shape[2], cols.shape[3], cols.shape[4]
        kw = kwC // C
        for r in prange(N * Ho):
            n = r // Ho
            y = r - n * Ho
            for u in range(Wo):
                ix0 = u * sw - pw
                for dy in range(kh):
                    iy = y * sh + dy - ph
                    if iy < 0 or iy >= H:
                        cols[n, y, u, dy, :] = 0
                    elif ix0 >= 0 and ix0 + kw <= W:
                        base = ix0 * C  # slices: copied as one run (an indexed loop is not)
                        cols[n, y, u, dy, :] = x[n, iy, base:base + kwC]
                    else:
                        for dx in range(kw):
                            ix = ix0 + dx
                            if ix < 0 or ix >= W:
                                for c in range(C):
                                    cols[n, y, u, dy, dx * C + c] = 0
                            else:
                                for c in range(C):
                                    cols[n, y, u, dy, dx * C + c] = x[n, iy, ix * C + c]

    def add_bias_bkpc(h, bias):
        # h[b, k, p, c] += bias[k, c] in place (channel-last conv output; one rounding, as h += b)
        B, K, P, C = h.shape
        for r in prange(B * K):
            b = r // K
            k = r - b * K
            for p in range(P):
                for c in range(C):
                    h[b, k, p, c] += bias[k, c]

    def avg_pool_nhwc(x, s, out):
        # out[n, yo, xo, c] = mean of the s×s window: summed in NumPy's order for this layout
        # (from 0, window rows, then columns), then divided by s·s in double
        # precision and rounded to out's dtype, as np.mean divides (by an intp count)
        N, H, W, C = x.shape
        Ho, Wo = out.shape[1], out.shape[2]
        ss = float(s * s)
        for r in prange(N * Ho):
            n = r // Ho
            yo = r - n * Ho
            acc = np.empty(C, dtype=x.dtype)
            for xo in range(Wo):
                for c in range(C):
                    acc[c] = 0
                for dy in range(s):
                    for dx in range(s):
                        for c in range(C):
                            acc[c] += x[n, yo * s + dy, xo * s + dx, c]
                for c in range(C):
                    out[n, yo, xo, c] = np.float64(acc[c]) / ss

    return {"adam": adam_flat, "gate": gate_bku, "gate_cl": gate_bskc, "contract": contract_bkj,
            "relax": relax_snm, "poisson_cdf": poisson_cdf, "im2col": im2col_nhwc,
            "add_bias": add_bias_bkpc, "avg_pool": avg_pool_nhwc}


def _numba_kernels() -> dict:
    """{name: (serial, parallel)} compiled kernels (compiled lazily per signature)."""
    if _NUMBA:
        return _NUMBA
    import numba

    serial = _kernel_functions(range)
    parallel = _kernel_functions(numba.prange)
    for name in serial:
        _NUMBA[name] = (numba.njit(parallel=False, fastmath=False, cache=True)(serial[name]),
                        numba.njit(parallel=True, fastmath=False, cache=True)(parallel[name]))
    return _NUMBA


def _kernel(name: str, size: int):
    serial, parallel = _numba_kernels()[name]
    threshold = min(PARALLEL_MIN, PARALLEL_MIN_OF.get(name, PARALLEL_MIN))
    return parallel if size >= threshold else serial


def _use_numba(*arrays, contiguous: bool = True) -> bool:
    """Numba takes C-contiguous (with ``contiguous=False``: any layout, the caller copies)
    NumPy float32/float64 arrays of one dtype."""
    if not numba_enabled():
        return False
    dt = arrays[0].dtype
    return all(isinstance(a, np.ndarray) and a.dtype == dt and (a.flags.c_contiguous or not contiguous)
               for a in arrays) and dt in (np.float32, np.float64)


# --------------------------------------------------------------------------
# Adam

_CUPY: dict = {}  #: CuPy kernels, by (array module, name)


def _get_cupy_adam(cupy):
    if (cupy, "adam") not in _CUPY:
        _CUPY[cupy, "adam"] = cupy.ElementwiseKernel(
            "T g, T b1, T b2, T eps, T step, T sqrt_c2, T tiny",
            "T p, T m, T v",
            """
            T mk = b1 * m + (1 - b1) * g;
            T vk = b2 * v + (1 - b2) * g * g;
            if (fabs(mk) < tiny) mk = mk * 0;
            if (vk < tiny) vk = vk * 0;
            m = mk; v = vk;
            p -= step * mk / (sqrt(vk) / sqrt_c2 + eps);
            """,
            "neurosim_adam",
        )
    return _CUPY[cupy, "adam"]


def flush_subnormal(y):
    """Set the subnormal values of the float array ``y`` (NumPy or CuPy) to zero, in place:
    ``y *= (|y| >= tiny)``, tiny the dtype's smallest normal number (a subnormal keeps its
    sign as ±0; NaN and ±inf are kept).  The Numba kernels make the same product.  Returns
    ``y``."""
    xp = array_module(y)
    xp.multiply(y, xp.abs(y) >= np.finfo(y.dtype).tiny, out=y)
    return y


def adam_update_numpy(p, g, m, v, b1, b2, eps, step, sqrt_c2):
    """Reference NumPy/CuPy implementation (several passes over memory)."""
    xp = array_module(p)
    m *= b1
    m += (1.0 - b1) * g
    flush_subnormal(m)
    v *= b2
    v += (1.0 - b2) * (g * g)
    flush_subnormal(v)
    p -= step * m / (xp.sqrt(v) / sqrt_c2 + eps)


def adam_update(p, g, m, v, b1, b2, eps, step, sqrt_c2):
    """One Adam step in place: m, v moments; p -= step·m/(√v/√c2 + ε).

    A moment that decays below the dtype's smallest normal number is set to zero: a unit
    whose gradient stops (a closed gate) takes its first moment through the subnormal
    numbers (×0.9 per step), whose arithmetic is ~10 times slower on many CPUs (15 % of
    8.6 M float32 moments subnormal: one Numba Adam pass 13 → 140 ms on an Intel Xeon).
    What it changes in the weights, ≤ step·tiny/ε, is below the rounding of any weight
    above 1e-27 in magnitude."""
    if array_module(p) is np:
        if numba_enabled() and p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous:
            f = _kernel("adam", p.size)
            dt = p.dtype.type
            f(p.reshape(-1), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), m.reshape(-1),
              v.reshape(-1), dt(b1), dt(1.0 - b1), dt(b2), dt(1.0 - b2), dt(eps), dt(step),
              dt(1.0 / sqrt_c2), dt(np.finfo(p.dtype).tiny))
        else:
            adam_update_numpy(p, g, m, v, b1, b2, eps, step, sqrt_c2)
    else:  # CuPy (or the strict test device, tests/strict_device.py)
        k = _get_cupy_adam(array_module(p))
        dt = p.dtype.type
        # scalars as 0-d host values of p's dtype: no device round trip, no sync
        k(g, dt(b1), dt(b2), dt(eps), dt(step), dt(sqrt_c2), dt(np.finfo(p.dtype).tiny), p, m, v)


# --------------------------------------------------------------------------
# vector gating nonlinearity (eq. 7-8)


def gate_reference(h, t):
    """``(a, G)`` with G = Θ(Σ_μ t[μ]·h[:, μ]) (singleton μ axis) and a = G·h."""
    xp = array_module(h)
    G = (xp.sum(h * t, axis=1, keepdims=True) >= 0).astype(h.dtype)
    return h * G, G


def _cupy_kernels(cupy) -> dict:
    """CuPy kernels of the gate and the contraction: one launch each instead of
    the 3-10 the xp reference takes (launch latency dominates small steps)."""
    if (cupy, "gate") in _CUPY:
        return {"gate": _CUPY[cupy, "gate"], "contract": _CUPY[cupy, "contract"]}
    _CUPY[cupy, "gate"] = cupy.ElementwiseKernel(
        "raw T h, raw T t, int32 K, int32 U", "T G",
        """
        const long long b = i / U, u = i % U;
        T s = h[(b * K) * U + u] * t[u];
        for (int k = 1; k < K; ++k) s += h[(b * K + k) * U + u] * t[(long long)k * U + u];
        G = (s >= 0) ? (T)1 : (T)0;
        """,
        "neurosim_gate")
    _CUPY[cupy, "contract"] = cupy.ElementwiseKernel(
        "raw T e, raw T a, int32 K, int32 J", "T P",
        """
        const long long b = i / J, j = i % J;
        T s = e[b * K] * a[(b * K) * J + j];
        for (int k = 1; k < K; ++k) s += e[b * K + k] * a[(b * K + k) * J + j];
        P = s;
        """,
        "neurosim_contract")
    return _cupy_kernels(cupy)


def _gate_cupy(h, t):
    cupy = array_module(h)
    B, K = h.shape[:2]
    h = cupy.ascontiguousarray(h)
    tt = cupy.ascontiguousarray(cupy.broadcast_to(t.astype(h.dtype, copy=False), h.shape[1:]))
    G = cupy.empty((B, 1) + h.shape[2:], dtype=h.dtype)
    U = G.size // B
    _cupy_kernels(cupy)["gate"](h, tt, np.int32(K), np.int32(U), G)
    return h * G, G


def gate(h, t):
    """Vector gate of ``h`` (B, K, *units) with gating vectors ``t``
    (broadcastable to (K, *units), e.g. (K, C, 1, 1) for channels).

    Returns ``a`` (h's shape) and ``G`` of shape (B, 1, *units) in h's dtype.
    """
    if array_module(h) is not np:  # CuPy (or the strict test device)
        return _gate_cupy(h, t) if h.ndim >= 2 else gate_reference(h, t)
    if h.ndim >= 2 and isinstance(t, np.ndarray) \
            and t.dtype == h.dtype and _use_numba(h):
        B, K = h.shape[:2]
        if t.shape == h.shape[1:] and t.flags.c_contiguous:
            tt = t.reshape(K, -1)  # dense layers: one t per unit already
        else:
            tt = np.ascontiguousarray(np.broadcast_to(t, h.shape[1:])).reshape(K, -1)
        h3 = h.reshape(B, K, -1)
        a = np.empty_like(h)
        G = np.empty((B, 1) + h.shape[2:], dtype=h.dtype)
        _kernel("gate", h.size)(h3, tt, a.reshape(B, K, -1), G.reshape(B, -1))
        return a, G
    if h.ndim == 5 and isinstance(t, np.ndarray) and t.dtype == h.dtype:
        # a conv layer's output seen as (B, K, C, H, W) over channel-last memory (B, H, W, K, C)
        hcl = h.transpose(0, 3, 4, 1, 2)
        if _use_numba(hcl):
            B, K, C, H, W = h.shape
            tt = np.ascontiguousarray(np.broadcast_to(t, (K, C, 1, 1)).reshape(K, C))
            acl = np.empty_like(hcl)
            Gcl = np.empty((B, H, W, C), dtype=h.dtype)
            _kernel("gate_cl", h.size)(hcl.reshape(B, H * W, K, C), tt,
                                       acl.reshape(B, H * W, K, C), Gcl.reshape(B, H * W, C))
            return acl.transpose(0, 3, 4, 1, 2), Gcl.transpose(0, 3, 1, 2)[:, None]
    return gate_reference(h, t)


# --------------------------------------------------------------------------
# GEVB presynaptic factor of a shared weight (eq. 9)


def contract_components_reference(e, a):
    """P[b, j] = Σ_μ e[b, μ] a[b, μ, j] as a batched (1×K)·(K×J) matmul (NumPy or CuPy)."""
    xp = array_module(a)
    return xp.matmul(e[:, None, :], a)[:, 0, :]


def contract_components(e, a):
    """P[b, j] = Σ_μ e[b, μ] a[b, μ, j] for e (B, K) and a (B, K, J)."""
    if array_module(a) is not np and a.ndim == 3:  # CuPy (or the strict test device)
        cupy = array_module(a)
        B, K, J = a.shape
        P = cupy.empty((B, J), dtype=a.dtype)
        _cupy_kernels(cupy)["contract"](cupy.ascontiguousarray(e, dtype=a.dtype),
                                        cupy.ascontiguousarray(a), np.int32(K), np.int32(J), P)
        return P
    if _use_numba(e, a) and a.ndim == 3:
        P = np.empty((a.shape[0], a.shape[2]), dtype=a.dtype)
        _kernel("contract", a.size)(e, a, P)
        return P
    return contract_components_reference(e, a)


# --------------------------------------------------------------------------
# channel-last convolution outputs: bias, average pooling


def add_bias_cl(h, bias) -> bool:
    """``h[b, k, p, c] += bias[k, c]`` in place over a C-contiguous (B, K, P, C) array (a
    convolution's channel-last output); False (nothing done) when the kernel does not take
    the arrays (the caller adds the bias itself)."""
    if not (_use_numba(h, bias) and h.ndim == 4 and bias.shape == (h.shape[1], h.shape[3])):
        return False
    _kernel("add_bias", h.size)(h, bias)
    return True


def avg_pool_cl(x, s: int):
    """s×s average pooling with stride s of a C-contiguous channel-last block ``x`` (N, H, W, C)
    (trailing rows and columns that fill no window are left out): (N, H//s, W//s, C), equal
    bit for bit to ``mean`` over the windows of the cropped view; None when the kernel does
    not take ``x``."""
    if not (_use_numba(x) and x.ndim == 4):
        return None
    N, H, W, C = x.shape
    out = np.empty((N, H // s, W // s, C), dtype=x.dtype)
    _kernel("avg_pool", x.size)(x, int(s), out)
    return out


# --------------------------------------------------------------------------
# im2col of a channel-last convolution input


def im2col_nhwc_takes(x) -> bool:
    """Whether :func:`im2col_nhwc` takes ``x`` (after ``np.ascontiguousarray``): a NumPy
    float32/float64 block (n, H, W, C), Numba on."""
    return x.ndim == 4 and _use_numba(x, contiguous=False)


def im2col_nhwc(x, kernel, stride, padding):
    """The im2col matrix of a C-contiguous channel-last block ``x`` (n, H, W, C) (see
    :func:`im2col_nhwc_takes`): (n·Ho·Wo, kh·kw·C), row (example, output row, output
    column), column (dy, dx, c), zero where a window leaves the input (``padding`` (ph, pw)
    zeros on each side) — the copy that :meth:`neurosim.model.im2col.Geometry.windows` of
    the padded input makes, without the padded copy, in one parallel pass."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, H, W, C = x.shape
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    cols = np.empty((n, Ho, Wo, kh, kw * C), dtype=x.dtype)
    _kernel("im2col", cols.size)(x.reshape(n, H, W * C), C, sh, sw, ph, pw, cols)
    return cols.reshape(n * Ho * Wo, kh * kw * C)


# --------------------------------------------------------------------------
# exponential relaxation along a time course (circuit dynamics)


def relax(target, a: float, init, n_bin: int):
    """``y_k = (1 - a) target_k + a y_{k-1}`` along the steps of ``target`` (n_seg, 1 | n_bin,
    ...) from ``y_{-1} = init`` (a Python scalar), segments without reset: the Numba kernel of
    :func:`neurosim.realizations.dynamics.timeline.relax` (its reference, which it equals bit
    for bit: the same roundings in the same order).  Values that fall below the smallest
    normal number are set to zero as they are made (:func:`flush_subnormal`).  Returns ``y``
    (n_seg, n_bin, ...), or None when the kernel does not take the input (not NumPy
    float32/float64, ``init`` not a Python scalar, Numba off)."""
    if not (isinstance(target, np.ndarray) and numba_enabled() and target.ndim >= 2
            and target.dtype in (np.float32, np.float64) and type(a) is float
            and type(init) in (int, float)  # Python scalars: rounded to the array's dtype
            and target.shape[1] in (1, n_bin) and target.shape[0] > 0 and n_bin > 0):
        return None
    x = np.ascontiguousarray(target)
    S, N = x.shape[:2]
    y = np.empty((S, n_bin) + x.shape[2:], dtype=x.dtype)
    M = int(np.prod(x.shape[2:], dtype=np.int64))
    if M == 0:
        return y
    dt = x.dtype.type
    # the scalars rounded to the array's dtype as NumPy's operands are: (1 - a), a, and the
    # product init * a taken in double precision
    _kernel("relax", y.size)(x.reshape(S, N, M), dt(1.0 - a), dt(a), dt(init * a),
                             dt(np.finfo(x.dtype).tiny), y.reshape(S, n_bin, M))
    return y


# --------------------------------------------------------------------------
# Poisson counts by inversion of the CDF (spiking circuits)


def poisson_cdf(ls, us, p0, terms: int, dtype):
    """Counts ``#{1 <= k <= terms : us >= F_k}`` of the Poisson CDF ``F_k`` of means ``ls`` from
    ``F_0 = p0 = exp(-ls)``: the Numba kernel of the CDF loop in
    :func:`neurosim.realizations.dynamics.neurons.poisson` (float64 ``ls``, ``us``, ``p0`` of
    one length), equal to it bit for bit (the same roundings in the same order, stopped where
    the count stops growing).  Returns the counts in ``dtype``, or None when the kernel does not
    take the input (not NumPy float64, Numba off)."""
    if not (numba_enabled() and all(isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == 1
                                    for a in (ls, us, p0)) and ls.size == us.size == p0.size):
        return None
    cnt = np.empty(ls.size, dtype=dtype)
    _kernel("poisson_cdf", ls.size)(np.ascontiguousarray(ls), np.ascontiguousarray(us),
                                    np.ascontiguousarray(p0), int(terms), cnt)
    return cnt
