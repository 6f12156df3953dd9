"""Slice-order (shear-warp) projection as Numba CPU kernels: the rule of :mod:`gpukit.backends._slices`.

Slice-major traversal (:func:`_slices_kernel`): each task (one per thread) owns a band of intermediate rows
(about equal numbers of rays read) and streams every slice in memory order, visiting the slice's part of its
band row by row, with a software prefetch (:mod:`._prefetch`) of the slice row ``PREFETCH_ROWS`` rows ahead: a
thin slab reads one short run per row, which the hardware prefetchers do not follow (the prefetch halved the
kernel time of the benchmark's 20 mm slab). Owning rows rather than slices leaves nothing to merge and
combines every ray's samples in slice order, the reference's order. It replaced two earlier traversals (blocks
of 8 rows each streaming the slices, for thick slabs; each task its own run of slices into its own
accumulators, merged, for thin ones): on the 512^3 benchmark volume, 2 cores, the full oblique MIP went from
44.8 to 34 ms and the 20 mm slab from 11.2 to 5.9 ms (with the two changes below), and on one core neither
order was faster anywhere.

The accumulators are indexed flat (row ``va`` at offset ``va * NB``): a row view per visited row cost two
reference-count updates on an array every task shares, a quarter of the 20 mm slab's kernel time. For the same
reason the kernel calls :func:`_slice_rows` once per slice and task, compiled without Numba's runtime: called
per row, its argument arrays' reference counts and the call itself were a third of the 20 mm slab's kernel
time (6.1 -> 3.9 ms with both cores).

When the slice axis is the array's fastest (x: thin in-plane voxels and thicker slices, with rays closest to
the column axis), one cache line holds ``64 / itemsize`` consecutive slices, and a slice-by-slice stream
would load each line once per slice. The kernel then visits blocks of that many slices row by row, each row
through every slice of the block in order: the real CT's 20 mm oblique slab of the README's figure went from
30 to 21 ms (ray order: 60 ms).

For each row of a slice the run of rays with a sample is one interval (the inside and slab tests are linear
in the ray's column), found by multiplication, and fixed up with the rule's own float64 test (:func:`_test`)
wherever a bound falls within ``NEAR`` of a whole number, so the samples are exactly the reference's; rays the
warp never reads are skipped (:func:`gpukit.backends._slices.footprint`). Inside the run every sample of the
slice has the same two bilinear weights: the loop is a contiguous stencil over two rows of the slice (the fast
axis of the array when the principal axis is z or y) with unsigned offsets, which LLVM vectorises (checked
with ``inspect_asm``: ``vpmovsxwd``/``vcvtdq2ps``/``vsubps``/``vmulps``/``vaddps``/``vcmpgtps`` on ymm
registers for int16). The few samples whose neighbours fall off the slice edge take a clamped scalar path.
The warp (step 4) is a second, row-parallel kernel in float64; for linear max/min its common case is
vectorised (:func:`_warp_kernel`: 1.3 -> 0.6 ms for the 512x512 image of the benchmark's slab).

``precision="exact"``: float64 blends and per-sample rescale, the numpy reference's operations in the same
order (bit for bit). ``precision="fast"`` (8- and 16-bit stored values): float32 weights and blends; with a
uniform rescale the raw blends are combined and rescaled once per intermediate ray (in float64), as the
ray-order fast path does. Its bound against "exact" is the ray-order one, :func:`.sampler.fast_bound`
(the bilinear blend has fewer operations than the trilinear one it is proved for), except for ``mean`` where
the float32 sum of ``n`` samples adds at most ``n * u`` times the sum of their magnitudes (a mean over 512
slices of |values| below 4096: at most 0.13 HU; typically 0.001 HU, see the tests).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, prange
from .._sampler_math import MODE_MAX, MODE_MEAN, MODE_MIN, combine_mirror
from .._slices import footprint, slice_plan
from ..codes import EPS, MODES
from ._prefetch import prefetch
from .sampler import fast_applies

_JIT = dict(cache=True, fastmath=False, nogil=True)

#: the slice row this many intermediate rows ahead is prefetched (0: off)
PREFETCH_ROWS = 12


@njit(inline="always", **_JIT)
def _test(uaf, ub, mf, mta, mtb, na, nb, sA, sB, sM, s0, smax):
    """:func:`gpukit.backends._slices.sample_test` for one crossing (the same float64 expressions)."""
    ubf = float(ub)
    xa = uaf + mta
    xb = ubf + mtb
    s = ((sA * uaf + sM * mf) + s0) + sB * ubf
    return (xa >= -EPS and xa <= na - 1 + EPS and xb >= -EPS and xb <= nb - 1 + EPS
            and s >= -EPS and s <= smax + EPS)


INF = math.inf

#: a division's bound that lies this close to a whole number is settled by the rule's own test (:func:`_test`)
NEAR = 1e-7


@njit(inline="always", **_JIT)
def _near(t):
    return abs(t - math.floor(t + 0.5)) < NEAR


@njit(inline="always", **_JIT)
def _run(uaf, mf, mta, mtb, na, nb, sA, sB, inv_sB, sM, s0, smax, ob, NB):
    """``[lo, hi)``: the rays ``ub`` of intermediate row ``uaf`` with a sample in slice ``mf``. The bounds come
    from the linear inside and slab conditions; a bound within ``NEAR`` of a whole number (where rounding could
    decide it) is fixed up with the rule's own test, so the samples are exactly the reference's."""
    lo_f = float(ob)
    hi_f = float(ob + NB - 1)
    exact = False
    # inside the slice along b
    t = -EPS - mtb
    exact |= _near(t)
    lo_f = max(lo_f, math.ceil(t))
    t = nb - 1 + EPS - mtb
    exact |= _near(t)
    hi_f = min(hi_f, math.floor(t))
    # inside the slab
    srow = (sA * uaf + sM * mf) + s0
    if sB != 0.0:
        t1 = (-EPS - srow) * inv_sB
        t2 = (smax + EPS - srow) * inv_sB
        exact |= _near(t1) or _near(t2)
        lo_f = max(lo_f, math.ceil(min(t1, t2)))
        hi_f = min(hi_f, math.floor(max(t1, t2)))
    elif srow < -EPS or srow > smax + EPS:
        return 0, 0
    if not lo_f <= hi_f + 1.0:
        return 0, 0
    lo = int(lo_f)
    hi = int(hi_f)
    if exact:
        while lo - 1 >= ob and _test(uaf, lo - 1, mf, mta, mtb, na, nb, sA, sB, sM, s0, smax):
            lo -= 1
        while lo <= hi and not _test(uaf, lo, mf, mta, mtb, na, nb, sA, sB, sM, s0, smax):
            lo += 1
        while hi + 1 < ob + NB and _test(uaf, hi + 1, mf, mta, mtb, na, nb, sA, sB, sM, s0, smax):
            hi += 1
        while hi >= lo and not _test(uaf, hi, mf, mta, mtb, na, nb, sA, sB, sM, s0, smax):
            hi -= 1
    return lo, max(hi + 1, lo)


@njit(inline="always", **_JIT)
def _combine(acc, cnt, o, v, code, count):
    """Combine sample ``v`` into accumulator ``acc[o]`` by ``code`` (``count``: and count it, for the mean)."""
    a = acc[o]
    if code == MODE_MAX:
        acc[o] = v if v > a else a
    elif code == MODE_MIN:
        acc[o] = v if v < a else a
    else:
        acc[o] = a + v
    if count:
        cnt[o] += 1


@njit(inline="always", **_JIT)
def _linear_run(flat, base0, base1, sb, lo, hi, ibm, nbm1, clamp, fam, fbm, rows, s0r, o0r, s1r, o1r, sc, of,
                accrow, cntrow, ob, code, count, one):
    """Samples ``lo <= ub < hi`` of one intermediate row: bilinear with the slice's weights ``fam``/``fbm``
    (``rows``: rescale each slice row before the blend across rows, else the blend with ``sc``/``of``),
    combined by ``code`` into ``accrow`` (``count``: and counted, for the mean). Called with constant
    ``sb``/``clamp``/``rows``/``code``/``count`` so that each inlined copy is one straight loop; without
    clamping it indexes with unsigned offsets, so there is no negative-index wraparound and LLVM vectorises
    the loop."""
    n = hi - lo
    if n <= 0:
        return
    if not clamp:
        # unsigned offsets: no negative-index wraparound to test per read, and no array views (whose reference
        # counts would cost more than a short run's samples)
        j = lo + ibm
        u0 = np.uint64(base0 + j * sb)
        u1 = np.uint64(base1 + j * sb)
        us = np.uint64(sb)
        uo = np.uint64(lo - ob)
        for t_ in range(n):
            t = np.uint64(t_)
            x00 = (flat[u0 + t * us] * one)
            x10 = (flat[u1 + t * us] * one)
            h0 = x00 + ((flat[u0 + t * us + us] * one) - x00) * fbm
            h1 = x10 + ((flat[u1 + t * us + us] * one) - x10) * fbm
            if rows:
                h0 = h0 * s0r + o0r
                h1 = h1 * s1r + o1r
                v = h0 + (h1 - h0) * fam
            else:
                v = (h0 + (h1 - h0) * fam) * sc + of
            _combine(accrow, cntrow, uo + t, v, code, count)
        return
    for ub in range(lo, hi):
        j0 = min(max(ub + ibm, 0), nbm1)
        j1 = min(max(ub + ibm + 1, 0), nbm1)
        x00 = (flat[base0 + j0 * sb] * one)
        x10 = (flat[base1 + j0 * sb] * one)
        h0 = x00 + ((flat[base0 + j1 * sb] * one) - x00) * fbm
        h1 = x10 + ((flat[base1 + j1 * sb] * one) - x10) * fbm
        if rows:
            h0 = h0 * s0r + o0r
            h1 = h1 * s1r + o1r
            v = h0 + (h1 - h0) * fam
        else:
            v = (h0 + (h1 - h0) * fam) * sc + of
        _combine(accrow, cntrow, ub - ob, v, code, count)


@njit(inline="always", **_JIT)
def _interior(flat, base0, base1, sb, lo, hi, ibm, nbm1, fam, fbm, rows, s0r, o0r, s1r, o1r, sc, of, accrow,
              cntrow, ob, code, one):
    """:func:`_linear_run` without clamping, one constant-argument copy per (mode, row rescale, unit stride)."""
    if sb == 1:
        if code == MODE_MAX:
            if rows:
                _linear_run(flat, base0, base1, 1, lo, hi, ibm, nbm1, False, fam, fbm, True, s0r, o0r, s1r, o1r,
                            sc, of, accrow, cntrow, ob, MODE_MAX, False, one)
            else:
                _linear_run(flat, base0, base1, 1, lo, hi, ibm, nbm1, False, fam, fbm, False, s0r, o0r, s1r, o1r,
                            sc, of, accrow, cntrow, ob, MODE_MAX, False, one)
        elif code == MODE_MIN:
            if rows:
                _linear_run(flat, base0, base1, 1, lo, hi, ibm, nbm1, False, fam, fbm, True, s0r, o0r, s1r, o1r,
                            sc, of, accrow, cntrow, ob, MODE_MIN, False, one)
            else:
                _linear_run(flat, base0, base1, 1, lo, hi, ibm, nbm1, False, fam, fbm, False, s0r, o0r, s1r, o1r,
                            sc, of, accrow, cntrow, ob, MODE_MIN, False, one)
        else:
            if rows:
                _linear_run(flat, base0, base1, 1, lo, hi, ibm, nbm1, False, fam, fbm, True, s0r, o0r, s1r, o1r,
                            sc, of, accrow, cntrow, ob, MODE_MEAN, True, one)
            else:
                _linear_run(flat, base0, base1, 1, lo, hi, ibm, nbm1, False, fam, fbm, False, s0r, o0r, s1r, o1r,
                            sc, of, accrow, cntrow, ob, MODE_MEAN, True, one)
    else:
        _linear_run(flat, base0, base1, sb, lo, hi, ibm, nbm1, False, fam, fbm, rows, s0r, o0r, s1r, o1r, sc, of,
                    accrow, cntrow, ob, code, code == MODE_MEAN, one)


# without Numba's runtime (it allocates nothing): a call would otherwise take and drop a reference to each of its
# seven arrays, fourteen atomic updates per call on counters every task shares (called once per visited row,
# they were a fifth of the 20 mm slab's kernel time; one call per slice and task now also keeps the slice's
# constants out of the row loop)
@njit(_nrt=False, **_JIT)
def _slice_rows(flat, m, va0, va1, pfr, oa, ob, NB, na, nb, sp, sa, sb, mf, mtam, mtbm, iam, ibm, ram, rbm, fam, fbm,
                sA, sB, inv_sB, sM, s0, smax, code, linear, rows, sc, of, slopes, intercepts, acc, cnt, count, one,
                zero, fplo, fphi):
    """The samples of slice ``m`` on intermediate rows ``va0 <= va < va1``, in order, combined into the flat
    accumulators ``acc``/``cnt`` (steps 2-3 of the rule; ``slopes``/``intercepts``, ``one``/``zero`` in ``acc``'s
    dtype); ``pfr > 0``: prefetch the slice row ``pfr`` rows ahead (around the slab's middle, where that row's
    run lies). One function, not a row helper inlined into a loop: Python 3.11 passes a call of over 30
    arguments as ``*args``, which Numba cannot inline."""
    base = m * sp
    nflat = flat.shape[0]
    for va in range(va0, va1):
        if pfr and sB != 0.0:
            up = va + oa + pfr
            ubc = (0.5 * smax - ((sA * float(up) + sM * mf) + s0)) * inv_sB
            ubc = min(max(ubc, float(ob)), float(ob + NB - 1))
            jc = min(max(int(ubc) + ibm, 0), nb - 1)
            rp = min(max(up + iam, 0), na - 1)
            idx = base + rp * sa + jc * sb
            prefetch(flat, max(idx - 24 * sb, 0))
            prefetch(flat, min(idx + 24 * sb, nflat - 1))
        ua = va + oa
        uaf = float(ua)
        xa = uaf + mtam
        if xa < -EPS or xa > na - 1 + EPS:
            continue
        lo, hi = _run(uaf, mf, mtam, mtbm, na, nb, sA, sB, inv_sB, sM, s0, smax, ob, NB)
        # only the rays the warp reads (gpukit.backends._slices.footprint): the others cannot change the output
        lo = max(lo, fplo[va] + ob)
        hi = min(hi, fphi[va] + ob)
        if lo >= hi:
            continue
        # flat accumulators, row va at offset va * NB: indexed ``ub - obr`` (a row view per row would cost two
        # reference counts on the accumulator every task shares)
        obr = ob - va * NB
        if not linear:
            rr = min(max(ua + ram, 0), na - 1)
            if rows:
                sc, of = slopes[rr], intercepts[rr]
            rowb = base + rr * sa
            for ub in range(lo, hi):
                j = min(max(ub + rbm, 0), nb - 1)
                _combine(acc, cnt, ub - obr, (flat[rowb + j * sb] * one) * sc + of, code, count)
            continue
        r0 = min(max(ua + iam, 0), na - 1)
        r1 = min(max(ua + iam + 1, 0), na - 1)
        s0r = o0r = s1r = o1r = zero
        if rows:
            s0r, o0r = slopes[r0], intercepts[r0]
            s1r, o1r = slopes[r1], intercepts[r1]
        base0 = base + r0 * sa
        base1 = base + r1 * sa
        # interior: both column neighbours on the slice; the edges clamp
        ilo = min(max(lo, -ibm), hi)
        ihi = max(min(hi, nb - 1 - ibm), ilo)
        _linear_run(flat, base0, base1, sb, lo, ilo, ibm, nb - 1, True, fam, fbm, rows, s0r, o0r, s1r, o1r,
                    sc, of, acc, cnt, obr, code, count, one)
        _interior(flat, base0, base1, sb, ilo, ihi, ibm, nb - 1, fam, fbm, rows, s0r, o0r, s1r, o1r, sc, of,
                  acc, cnt, obr, code, one)
        _linear_run(flat, base0, base1, sb, ihi, hi, ibm, nb - 1, True, fam, fbm, rows, s0r, o0r, s1r, o1r,
                    sc, of, acc, cnt, obr, code, count, one)


@njit(inline="always", **_JIT)
def _row_span(m, v0, v1, oa, na, mta, sA, sM, s0, smax, q0, q1):
    """``(lo, hi)``: the rows ``ua`` of slice ``m`` that can hold a sample, the task's (``v0 <= ua - oa < v1``),
    inside along a, and the slab met somewhere on the row (one row of margin); ``lo > hi`` for none."""
    mf = float(m)
    mtam = mta[m]
    lo = max(float(oa + v0), math.ceil(-EPS - mtam) - 1.0)
    hi = min(float(oa + v1 - 1), math.floor(na - 1 + EPS - mtam) + 1.0)
    c_lo = -EPS - sM * mf - s0 - q1
    c_hi = smax + EPS - sM * mf - s0 - q0
    if sA != 0.0:
        t1 = c_lo / sA
        t2 = c_hi / sA
        lo = max(lo, math.floor(min(t1, t2)) - 1.0)
        hi = min(hi, math.ceil(max(t1, t2)) + 1.0)
    elif c_lo > 0.0 or c_hi < 0.0:
        return 1, 0
    if not lo <= hi:
        return 1, 0
    return int(lo), int(hi)


@njit(inline="always", **_JIT)
def _slice_scale(m, raw, rows, slopes, intercepts, one, zero):
    """The rescale applied to slice ``m``'s blends (none when raw or per row)."""
    if raw or rows:
        return one, zero
    kk = m if slopes.shape[0] > 1 else 0
    return slopes[kk], intercepts[kk]


@njit(parallel=True, **_JIT)
def _slices_kernel(flat, n_p, na, nb, sp, sa, sb, oa, ob, mta, mtb, ia, ib, ra, rb, fa, fb, sA, sB, sM, s0,
                   smax, code, linear, rows, raw, slopes, intercepts, fplo, fphi, pfr, sblk, bounds, init, acc, cnt):
    """Steps 1-3 of the rule into ``acc``/``cnt`` (``cnt`` comes zeroed and counts for the mean only: a max/min
    ray is empty while ``acc`` holds its initial infinity ``init``); ``fa``/``fb`` in ``acc``'s dtype. ``raw``:
    combine unrescaled blends (uniform rescale, applied later); ``rows``: per-row rescale (p != z).
    Task ``t`` owns the intermediate rows ``bounds[t] <= va < bounds[t + 1]`` (it sets their accumulators to
    ``init``) and streams every slice in order, visiting the slice's band of its rows in order: reads move
    forward through memory, the accumulator band a slice touches is the one the previous slice touched, give
    or take a column or two, and each ray is combined in slice order by one task."""
    for t in prange(bounds.shape[0] - 1):
        _slices_task(np.int64(t), flat, n_p, na, nb, sp, sa, sb, oa, ob, mta, mtb, ia, ib, ra, rb, fa, fb, sA, sB, sM,
                     s0, smax, code, linear, rows, raw, slopes, intercepts, fplo, fphi, pfr, sblk, bounds, init, acc,
                     cnt)


@njit(**_JIT)
def _slices_task(t, flat, n_p, na, nb, sp, sa, sb, oa, ob, mta, mtb, ia, ib, ra, rb, fa, fb, sA, sB, sM, s0, smax,
                 code, linear, rows, raw, slopes, intercepts, fplo, fphi, pfr, sblk, bounds, init, acc, cnt):
    """Task ``t`` of :func:`_slices_kernel`: its ``prange`` body (see :mod:`gpukit.backends._jit`)."""
    NA, NB = acc.shape
    F = acc.dtype.type
    one = F(1.0)
    zero = F(0.0)
    finit = F(init)
    inv_sB = 1.0 / sB if sB != 0.0 else 0.0
    count = code == MODE_MEAN
    q0 = min(sB * ob, sB * (ob + NB - 1))
    q1 = max(sB * ob, sB * (ob + NB - 1))
    accf = acc.reshape(-1)
    cntf = cnt.reshape(-1)
    v0 = bounds[t]
    v1 = bounds[t + 1]
    for o in range(v0 * NB, v1 * NB):
        accf[o] = finit
    rlo = np.empty(sblk, np.int64)
    rhi = np.empty(sblk, np.int64)
    for mb in range(0, n_p, sblk):
        me = min(n_p, mb + sblk)
        if sblk == 1:
            lo, hi = _row_span(mb, v0, v1, oa, na, mta, sA, sM, s0, smax, q0, q1)
            if lo <= hi:
                sc, of = _slice_scale(mb, raw, rows, slopes, intercepts, one, zero)
                _slice_rows(flat, mb, lo - oa, hi + 1 - oa, pfr, oa, ob, NB, na, nb, sp, sa, sb, float(mb),
                            mta[mb], mtb[mb], ia[mb], ib[mb], ra[mb], rb[mb], fa[mb], fb[mb], sA, sB, inv_sB, sM, s0,
                            smax, code, linear, rows, sc, of, slopes, intercepts, accf, cntf, count, one, zero,
                            fplo, fphi)
            continue
        # the slice axis is the array's fastest: a block of slices shares each cache line, so the block is
        # visited row by row, each row through every slice of the block in order (each ray still combines
        # its samples in slice order)
        ulo = oa + v1
        uhi = oa + v0 - 1
        for m in range(mb, me):
            lo, hi = _row_span(m, v0, v1, oa, na, mta, sA, sM, s0, smax, q0, q1)
            rlo[m - mb] = lo
            rhi[m - mb] = hi
            if lo <= hi:
                ulo = min(ulo, lo)
                uhi = max(uhi, hi)
        for ua in range(ulo, uhi + 1):
            for m in range(mb, me):
                if rlo[m - mb] <= ua <= rhi[m - mb]:
                    sc, of = _slice_scale(m, raw, rows, slopes, intercepts, one, zero)
                    # pfr * 0, not 0: a literal argument would compile a second _slice_rows per signature
                    _slice_rows(flat, m, ua - oa, ua + 1 - oa, pfr * 0, oa, ob, NB, na, nb, sp, sa, sb, float(m),
                                mta[m], mtb[m], ia[m], ib[m], ra[m], rb[m], fa[m], fb[m], sA, sB, inv_sB, sM,
                                s0, smax, code, linear, rows, sc, of, slopes, intercepts, accf, cntf, count, one,
                                zero, fplo, fphi)



def _tasks(n):
    """Tasks for ``n`` rows: one per thread."""
    import numba

    return max(1, min(numba.get_num_threads(), n))


def _row_bounds(fplo, fphi):
    """Row bounds of the kernel's tasks, one per thread, with about equal numbers of rays read (the footprint:
    the samples a row holds are about proportional to them)."""
    NA = fplo.shape[0]
    T = _tasks(NA)
    w = np.cumsum(np.maximum(fphi - fplo, 0), dtype=np.float64)
    if not NA or w[-1] <= 0:
        return np.linspace(0, NA, T + 1).astype(np.int64)
    cuts = np.searchsorted(w, w[-1] * np.arange(1, T) / T)
    return np.concatenate(([0], np.clip(cuts, 0, NA), [NA])).astype(np.int64)


@njit(inline="always", **_JIT)
def _ray_value(acc, cnt, ia, ib, mean, raw, rs, ro):
    """``(ok, value)`` of intermediate ray ``(ia, ib)``: empty or outside the image gives ``ok = False``."""
    NA, NB = acc.shape
    if ia < 0 or ia >= NA or ib < 0 or ib >= NB:
        return False, 0.0
    v = float(acc[ia, ib])
    if (cnt[ia, ib] == 0) if mean else math.isinf(v):
        return False, 0.0
    if mean:
        v = v / cnt[ia, ib]
    if raw:
        v = v * rs + ro
    return True, v


@njit(inline="always", **_JIT)
def _warp_pixel(acc, cnt, pa, pb, mean, linear, raw, rs, ro, fill):
    """Step 4 of the rule for one output pixel at intermediate position ``(pa, pb)``: the four (or the nearest)
    intermediate rays, float64."""
    NA, NB = acc.shape
    if not linear:
        ok, v = _ray_value(acc, cnt, int(math.floor(pa + 0.5)), int(math.floor(pb + 0.5)), mean, raw, rs, ro)
        return v if ok else fill
    a0f = math.floor(pa)
    b0f = math.floor(pb)
    fa = pa - a0f
    fb = pb - b0f
    a0 = int(a0f)
    b0 = int(b0f)
    if not mean and a0 >= 0 and a0 + 1 < NA and b0 >= 0 and b0 + 1 < NB:
        # the common case: four rays inside the image (a max/min ray is empty while infinite); the same sums in
        # the same order as below
        v00 = float(acc[a0, b0])
        v01 = float(acc[a0, b0 + 1])
        v10 = float(acc[a0 + 1, b0])
        v11 = float(acc[a0 + 1, b0 + 1])
        if abs(v00) < INF and abs(v01) < INF and abs(v10) < INF and abs(v11) < INF:
            if raw:
                v00 = v00 * rs + ro
                v01 = v01 * rs + ro
                v10 = v10 * rs + ro
                v11 = v11 * rs + ro
            w00 = (1.0 - fa) * (1.0 - fb)
            w01 = (1.0 - fa) * fb
            w10 = fa * (1.0 - fb)
            w11 = fa * fb
            num = ((w00 * v00 + w01 * v01) + w10 * v10) + w11 * v11
            den = ((w00 + w01) + w10) + w11
            return num / den if den > 0 else fill
    num = 0.0
    den = 0.0
    ok, v = _ray_value(acc, cnt, a0, b0, mean, raw, rs, ro)
    if ok:
        w = (1.0 - fa) * (1.0 - fb)
        num += w * v
        den += w
    ok, v = _ray_value(acc, cnt, a0, b0 + 1, mean, raw, rs, ro)
    if ok:
        w = (1.0 - fa) * fb
        num += w * v
        den += w
    ok, v = _ray_value(acc, cnt, a0 + 1, b0, mean, raw, rs, ro)
    if ok:
        w = fa * (1.0 - fb)
        num += w * v
        den += w
    ok, v = _ray_value(acc, cnt, a0 + 1, b0 + 1, mean, raw, rs, ro)
    if ok:
        w = fa * fb
        num += w * v
        den += w
    return num / den if den > 0 else fill


# error_model="numpy": a float division by zero gives inf/nan instead of raising, so the division's loop has no
# branch and vectorises (every division here is guarded by den > 0 anyway)
@njit(parallel=True, error_model="numpy", **_JIT)
def _warp_kernel(acc, cnt, wa0, wa1, wa2, wb0, wb1, wb2, mean, linear, raw, rs, ro, fill, out, T):
    """Step 4 of the rule: ``out[r, c]`` from the four (or the nearest) intermediate rays, float64
    (:func:`_warp_pixel`), ``T`` tasks of rows. Linear max/min rows take the common case (four finite rays
    inside the image) for every pixel in three loops, the two arithmetic ones vectorised by LLVM (packed
    ``vdivpd``/``vrndscalepd``) and the reads in between (this CPU's LLVM makes no gathers), then
    :func:`_warp_pixel` for the pixels the case does not hold for (left NaN); the same operations in the same
    order, so the same values."""
    for t in prange(T):
        _warp_task(np.int64(t), acc, cnt, wa0, wa1, wa2, wb0, wb1, wb2, mean, linear, raw, rs, ro, fill, out, T)


@njit(error_model="numpy", **_JIT)
def _warp_task(t, acc, cnt, wa0, wa1, wa2, wb0, wb1, wb2, mean, linear, raw, rs, ro, fill, out, T):
    """Task ``t`` of :func:`_warp_kernel`: its ``prange`` body (see :mod:`gpukit.backends._jit`)."""
    nr, nc = out.shape
    NA, NB = acc.shape
    accf = acc.reshape(-1)
    fast = linear and not mean and NA >= 2 and NB >= 2
    amax = NA - 2.0
    bmax = NB - 2.0
    idx = np.empty(nc, np.int64)
    fa = np.empty(nc, np.float64)
    fb = np.empty(nc, np.float64)
    ins = np.empty(nc, np.bool_)
    v = np.empty((4, nc), np.float64)
    for r in range(t * nr // T, (t + 1) * nr // T):
        rf = float(r)
        if fast:
            for c in range(nc):
                pa = (wa0 * float(c) + wa1 * rf) + wa2
                pb = (wb0 * float(c) + wb1 * rf) + wb2
                a0f = math.floor(pa)
                b0f = math.floor(pb)
                fa[c] = pa - a0f
                fb[c] = pb - b0f
                ins[c] = (a0f >= 0.0) & (a0f <= amax) & (b0f >= 0.0) & (b0f <= bmax)
                ac = a0f if a0f > 0.0 else 0.0
                bc = b0f if b0f > 0.0 else 0.0
                idx[c] = np.int64(ac if ac < amax else amax) * NB + np.int64(bc if bc < bmax else bmax)
            for c in range(nc):
                i = np.uint64(idx[c])
                v[0, c] = accf[i]
                v[1, c] = accf[i + np.uint64(1)]
                v[2, c] = accf[i + np.uint64(NB)]
                v[3, c] = accf[i + np.uint64(NB + 1)]
            for c in range(nc):
                v00 = v[0, c]
                v01 = v[1, c]
                v10 = v[2, c]
                v11 = v[3, c]
                good = ins[c] & (abs(v00) < INF) & (abs(v01) < INF) & (abs(v10) < INF) & (abs(v11) < INF)
                if raw:
                    v00 = v00 * rs + ro
                    v01 = v01 * rs + ro
                    v10 = v10 * rs + ro
                    v11 = v11 * rs + ro
                fac = fa[c]
                fbc = fb[c]
                w00 = (1.0 - fac) * (1.0 - fbc)
                w01 = (1.0 - fac) * fbc
                w10 = fac * (1.0 - fbc)
                w11 = fac * fbc
                num = ((w00 * v00 + w01 * v01) + w10 * v10) + w11 * v11
                den = ((w00 + w01) + w10) + w11
                res = num / den
                out[r, c] = res if good & (den > 0.0) else math.nan
            for c in range(nc):
                if out[r, c] != out[r, c]:
                    out[r, c] = _warp_pixel(acc, cnt, (wa0 * float(c) + wa1 * rf) + wa2,
                                            (wb0 * float(c) + wb1 * rf) + wb2, mean, linear, raw, rs, ro, fill)
        else:
            for c in range(nc):
                out[r, c] = _warp_pixel(acc, cnt, (wa0 * float(c) + wa1 * rf) + wa2,
                                        (wb0 * float(c) + wb1 * rf) + wb2, mean, linear, raw, rs, ro, fill)


def project_slices(data, slopes, intercepts, A, b, grid, mode, interp, fill, out, precision="exact"):
    """Numba version of :func:`gpukit.backends.numpy.slices.project_slices` (same arguments and result; with
    ``precision="exact"`` bit for bit, with "fast" within the bound in the module docstring)."""
    plan = slice_plan(A, b, grid, data.shape)
    slopes = np.ascontiguousarray(slopes, dtype=np.float64)
    intercepts = np.ascontiguousarray(intercepts, dtype=np.float64)
    uniform = bool(np.all(slopes == slopes[0]) and np.all(intercepts == intercepts[0]))
    fast = precision == "fast" and fast_applies(data)
    ftype = np.float32 if fast else np.float64
    code = MODES[mode]
    rs, ro = float(slopes[0]), float(intercepts[0])
    raw = bool(fast and uniform and rs != 0.0)
    ccode = combine_mirror(code) if raw and rs < 0 else code
    init = {MODE_MAX: -np.inf, MODE_MIN: np.inf, MODE_MEAN: 0.0}[ccode]
    acc = np.empty((plan.NA, plan.NB), ftype)          # set by the kernel
    # counts for the mean only (a max/min ray is empty while it holds its initial infinity)
    ccols = plan.NB if code == MODE_MEAN else 1
    cnt = np.zeros((plan.NA, ccols), np.int32)
    ia, fa, ib, fb, ra, rb, mta, mtb = plan.shifts(np.arange(plan.n_p))
    linear = interp == "linear"
    sl = (slopes if not uniform else slopes[:1]).astype(ftype)
    ic = (intercepts if not uniform else intercepts[:1]).astype(ftype)
    if plan.NA and plan.NB:
        data = np.ascontiguousarray(data)
        args = (data.reshape(-1), plan.n_p, plan.na, plan.nb, plan.stride_p, plan.stride_a, plan.stride_b, plan.oa,
                plan.ob, mta, mtb, ia, ib, ra, rb, fa.astype(ftype), fb.astype(ftype), plan.sA, plan.sB,
                plan.sM, plan.s0, plan.smax, ccode, linear, bool(plan.row_rescale and not uniform), raw, sl, ic,
                *footprint(plan, out.shape[0], out.shape[1]))
        # slices per block: those sharing a cache line when the slice axis is the array's fastest, else 1
        sblk = max(1, 64 // (plan.stride_p * data.itemsize))
        _slices_kernel(*args, PREFETCH_ROWS, sblk, _row_bounds(args[-2], args[-1]), init, acc, cnt)
    _warp_kernel(acc, cnt, plan.wa[0], plan.wa[1], plan.wa[2], plan.wb[0], plan.wb[1], plan.wb[2],
                 code == MODE_MEAN, linear, raw, rs, ro, float(fill), out, _tasks(out.shape[0]))
    return out


__all__ = ["project_slices"]
