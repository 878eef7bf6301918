"""im2col view constructors compared: ``as_strided`` (what :meth:`Geometry.windows` uses)
against NumPy's ``sliding_window_view``, on the CIFAR-10 conv shapes (batch 128, 5×5 kernel,
padding 2; inputs 3×32×32 and 64×16×16), channel-last (conv) and channel-first (LC) blocks.

Both build the same view (same shape and strides; checked here), so the copy that reads it
costs the same; what differs is the constructor's own time, paid once per block.  The two
variants alternate (A B B A ...) and each keeps its minimum over the repetitions, in process
CPU time and in wall time; the printed figures are ratios sliding_window_view / as_strided,
so a loaded machine changes them less than absolute times.

    python -m benchmarks.im2col_views [--repeats 15]
"""

from __future__ import annotations

import argparse
import time
import timeit
from functools import partial

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from neurosim.model.im2col import Geometry


def swv_windows(geo: Geometry, xpad, channel_last: bool):
    """:meth:`Geometry.windows` written with ``sliding_window_view``."""
    axes = (1, 2) if channel_last else (2, 3)
    v = sliding_window_view(xpad, (geo.kh, geo.kw), axis=axes)
    at = [slice(None)] * 4
    at[axes[0]], at[axes[1]] = slice(None, None, geo.sh), slice(None, None, geo.sw)
    return v[tuple(at)]


def im2col(windows, geo: Geometry, xpad, channel_last: bool) -> float:
    """Every block's im2col copy, as the conv (channel-last) and LC (channel-first) layers make it."""
    tot = 0.0
    for sl in geo.blocks(xpad.shape[0], geo.P * geo.CKK):
        w = windows(geo, xpad[sl], channel_last)
        order = (0, 1, 2, 4, 5, 3) if channel_last else (2, 3, 0, 1, 4, 5)
        cols = np.ascontiguousarray(w.transpose(order))
        tot += float(cols.flat[0])
    return tot


def ab(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Minimum wall and CPU seconds of each function, alternating their order."""
    wall = {k: np.inf for k in fns}
    cpu = {k: np.inf for k in fns}
    keys = list(fns)
    for r in range(repeats):
        for k in keys if r % 2 == 0 else keys[::-1]:
            c, t = time.process_time(), time.perf_counter()
            fns[k]()
            wall[k] = min(wall[k], time.perf_counter() - t)
            cpu[k] = min(cpu[k], time.process_time() - c)
    return wall, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.im2col_views", description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    for C, H in ((3, 32), (64, 16)):
        geo = Geometry((C, H, H), 5, 1, 2)
        x = rng.standard_normal((128, C, H, H)).astype(np.float32)
        for channel_last, layer in ((True, "conv"), (False, "LC")):
            xin = x.transpose(0, 2, 3, 1) if channel_last else x
            xpad = geo.pad(xin, channel_last)
            v1, v2 = geo.windows(xpad, channel_last), swv_windows(geo, xpad, channel_last)
            assert v1.shape == v2.shape and v1.strides == v2.strides
            args = (geo, xpad, channel_last)
            wall, cpu = ab({"as_strided": partial(im2col, Geometry.windows, *args),
                            "swv": partial(im2col, swv_windows, *args)}, a.repeats)
            print(f"{layer:4s} 128x{C}x{H}x{H} k5 p2: sliding_window_view / as_strided = "
                  f"{cpu['swv'] / cpu['as_strided']:.3f} (CPU), "
                  f"{wall['swv'] / wall['as_strided']:.3f} (wall)")
    xpad = np.zeros((10, 20, 20, 64), np.float32)
    geo = Geometry((64, 16, 16), 5, 1, 2)
    t1 = min(timeit.repeat(lambda: geo.windows(xpad, True), number=2000, repeat=5)) / 2000
    t2 = min(timeit.repeat(lambda: swv_windows(geo, xpad, True), number=2000, repeat=5)) / 2000
    print(f"view construction alone: as_strided {t1 * 1e6:.1f} us, sliding_window_view {t2 * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
