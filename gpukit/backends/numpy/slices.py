"""Slice-order (shear-warp) projection in plain numpy: the reference of the rule in :mod:`gpukit.backends._slices`.

Float64 throughout; one slice at a time over the intermediate image, then the warp. Other backends with the
``SLICE_ORDER`` capability reproduce these numbers (the Numba kernel's ``precision="exact"`` bit for bit).
"""

from __future__ import annotations

import numpy as np

from .._slices import slice_plan, sample_test
from ..codes import MODES

MODE_MAX, MODE_MIN, MODE_MEAN = MODES["max"], MODES["min"], MODES["mean"]


def _slice_values(flat, plan, m, va, vb, sh, slopes, intercepts, uniform, linear):
    """Rescaled float64 values of the samples ``(va, vb)`` (intermediate indices) of slice ``m``."""
    ia, fa, ib, fb, ra, rb = sh
    ua = va + plan.oa
    ub = vb + plan.ob
    base = m * plan.stride_p
    if not linear:
        r = np.clip(ua + ra, 0, plan.na - 1)
        c = np.clip(ub + rb, 0, plan.nb - 1)
        v = flat[base + r * plan.stride_a + c * plan.stride_b].astype(np.float64)
        if uniform:
            return v * slopes[0] + intercepts[0]
        k = r if plan.row_rescale else m
        return v * slopes[k] + intercepts[k]
    r0 = np.clip(ua + ia, 0, plan.na - 1)
    r1 = np.clip(ua + ia + 1, 0, plan.na - 1)
    c0 = np.clip(ub + ib, 0, plan.nb - 1)
    c1 = np.clip(ub + ib + 1, 0, plan.nb - 1)

    def at(r, c):
        return flat[base + r * plan.stride_a + c * plan.stride_b].astype(np.float64)

    x00 = at(r0, c0)
    h0 = x00 + (at(r0, c1) - x00) * fb
    x10 = at(r1, c0)
    h1 = x10 + (at(r1, c1) - x10) * fb
    if uniform:
        return (h0 + (h1 - h0) * fa) * slopes[0] + intercepts[0]
    if plan.row_rescale:
        h0 = h0 * slopes[r0] + intercepts[r0]
        h1 = h1 * slopes[r1] + intercepts[r1]
        return h0 + (h1 - h0) * fa
    return (h0 + (h1 - h0) * fa) * slopes[m] + intercepts[m]


def intermediate(data, slopes, intercepts, plan, mode, interp):
    """The intermediate image of the rule (float64 ``(NA, NB)``) and its sample counts (int32)."""
    code = MODES[mode]
    flat = data.reshape(-1)
    slopes = np.asarray(slopes, dtype=np.float64)
    intercepts = np.asarray(intercepts, dtype=np.float64)
    uniform = bool(np.all(slopes == slopes[0]) and np.all(intercepts == intercepts[0]))
    linear = interp == "linear"
    init = {MODE_MAX: -np.inf, MODE_MIN: np.inf, MODE_MEAN: 0.0}[code]
    acc = np.full((plan.NA, plan.NB), init, np.float64)
    cnt = np.zeros((plan.NA, plan.NB), np.int32)
    if plan.NA == 0 or plan.NB == 0:
        return acc, cnt
    ua = (np.arange(plan.NA) + plan.oa).astype(np.float64)[:, None]
    ub = (np.arange(plan.NB) + plan.ob).astype(np.float64)[None, :]
    ms = np.arange(plan.n_p)
    ia, fa, ib, fb, ra, rb, mta, mtb = plan.shifts(ms)
    for m in range(plan.n_p):
        mask = sample_test(ua, ub, float(m), mta[m], mtb[m], plan.na, plan.nb, plan.sA, plan.sB, plan.sM, plan.s0,
                           plan.smax)
        va, vb = np.nonzero(mask)
        if va.size == 0:
            continue
        v = _slice_values(flat, plan, m, va, vb, (ia[m], fa[m], ib[m], fb[m], ra[m], rb[m]), slopes, intercepts,
                          uniform, linear)
        cur = acc[va, vb]
        if code == MODE_MAX:
            acc[va, vb] = np.where(v > cur, v, cur)
        elif code == MODE_MIN:
            acc[va, vb] = np.where(v < cur, v, cur)
        else:
            acc[va, vb] = cur + v
        cnt[va, vb] += 1
    return acc, cnt


def warp(plan, acc, cnt, mode, interp, fill, nr, nc):
    """The output image (float64 ``(nr, nc)``) from the intermediate image: step 4 of the rule."""
    vals = acc / np.maximum(cnt, 1) if MODES[mode] == MODE_MEAN else acc
    r = np.arange(nr, dtype=np.float64)[:, None]
    c = np.arange(nc, dtype=np.float64)[None, :]
    pa = (plan.wa[0] * c + plan.wa[1] * r) + plan.wa[2]
    pb = (plan.wb[0] * c + plan.wb[1] * r) + plan.wb[2]

    def get(ia, ib):
        ok = (ia >= 0) & (ia < plan.NA) & (ib >= 0) & (ib < plan.NB)
        iac = np.clip(ia, 0, max(plan.NA - 1, 0))
        ibc = np.clip(ib, 0, max(plan.NB - 1, 0))
        if plan.NA == 0 or plan.NB == 0:
            return ok, np.zeros(ia.shape)
        ok &= cnt[iac, ibc] > 0
        return ok, vals[iac, ibc]

    if interp != "linear":
        ok, v = get(np.floor(pa + 0.5).astype(np.int64), np.floor(pb + 0.5).astype(np.int64))
        return np.where(ok, v, fill)
    a0 = np.floor(pa)
    b0 = np.floor(pb)
    fa = pa - a0
    fb = pb - b0
    a0 = a0.astype(np.int64)
    b0 = b0.astype(np.int64)
    num = np.zeros(pa.shape)
    den = np.zeros(pa.shape)
    for da, db, w in ((0, 0, (1.0 - fa) * (1.0 - fb)), (0, 1, (1.0 - fa) * fb), (1, 0, fa * (1.0 - fb)),
                      (1, 1, fa * fb)):
        ok, v = get(a0 + da, b0 + db)
        num = num + np.where(ok, w * np.where(ok, v, 0.0), 0.0)
        den = den + np.where(ok, w, 0.0)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), fill)


def project_slices(data, slopes, intercepts, A, b, grid, mode, interp, fill, out, precision="exact"):
    """Max/min/mean projection of ``data`` over ``grid = (ns, nr, nc)`` in slice order (the rule of
    :mod:`gpukit.backends._slices`) into ``out`` (``(nr, nc)``); ``precision`` is ignored (float64)."""
    plan = slice_plan(A, b, grid, data.shape)
    acc, cnt = intermediate(data, slopes, intercepts, plan, mode, interp)
    ns, nr, nc = (int(g) for g in grid)
    out[...] = warp(plan, acc, cnt, mode, interp, float(fill), nr, nc)
    return out


__all__ = ["project_slices", "intermediate", "warp"]
