"""Geometric sampling: reslice, resample, slab and full MIP, axis MIP; gpukit's backends against the usual tools.

Data: a CT-like ``(size, size, size)`` int16 volume at 1 mm (the
:func:`gpukit.testing.phantom` body, stored as HU + 1024 with intercept
-1024, with fresh noise in every slice). Every operation uses the same oblique
geometry (a plane through the centre rotated by (20, 30, 15) degrees,
``size x size`` pixels of 1 mm):

* oblique plane, trilinear: gpukit (numba, numpy), ``scipy.ndimage.map_coordinates`` (order 1),
  SimpleITK ``ResampleImageFilter`` (a one-slice output), VTK
  ``vtkImageReslice`` (linear), each on one plane repeated; ``Reslicer`` latency
  (p50/p99 over 100 random poses, each new) beside SimpleITK and VTK on the same
  100 poses (VTK: one filter whose axes change, as a viewer does);
* full-volume oblique resample to ``size^3``: gpukit, ``scipy.ndimage.affine_transform``,
  SimpleITK, VTK;
* oblique full MIP (``size x size`` rays x ``size`` steps of 1 mm) and a 20 mm
  slab MIP: gpukit, scipy (resample then max), SimpleITK (resample then
  ``MaximumProjectionImageFilter``), VTK (``SetSlabModeToMax``); gpukit's numba
  rows are timed warm (the volume's 8^3 brick grid for empty-space skipping
  already cached, as after any earlier big projection of the volume) and
  for a first call (caches cleared: the full MIP then builds the grid, the
  thin slab marches without it); and the same projections with
  ``order="slice"`` (shear-warp: a different sampling rule, an option), with
  their difference to the ray-order float64 result;
* rotating MIP about z (8 frames): gpukit's slice-order kernel (each frame's rays lie in planes of constant
  z, so the per-slice bilinear blends are computed once per slice and shared by the rows) against the same
  frames in ray order (identical values), with its accuracy against the exact path on 2 frames;
* interleaved: the plane (gpukit numba fast, SimpleITK, VTK) and the 20 mm slab (both orders, SimpleITK,
  VTK) timed again in turn, each round calling every contender once (the first rotating), so that a burst of load from
  a noisy machine's neighbours slows every contender of the round, not one row; gpukit's rows carry
  ``speedup_vs_fastest_peer``;
* axis-aligned (axial) MIP: gpukit (numba, numpy), plain ``data.max(axis=0)``,
  SimpleITK ``MaximumProjectionImageFilter``, and the read floor (bytes of the
  volume / measured copy bandwidth).

gpukit's numba rows come in pairs, ``fast`` (the default ``precision="fast"``:
float32 weights and blends) and ``exact`` (``precision="exact"``: the numpy
reference's float64 arithmetic, bit for bit), side by side; each fast row
carries ``exact_median_s`` (its exact twin's median), ``speedup_vs_exact`` and
its accuracy against the float64 reference (``max_abs_diff_hu`` over every
output value, ``median_abs_diff_hu``). Peers are compared with the exact result.

The peers get the volume already in HU as int16 (no rescale to do), gpukit
gets the stored values and rescales in the same pass. Each peer's result is
compared with gpukit's (``median_abs_diff_hu``; ``max_abs_diff_hu`` on pixels
well inside the volume for the single plane) so the timings compare like with
like. ``peak_bytes`` is measured with tracemalloc (numpy allocations: gpukit's
outputs and the numpy/scipy paths) in one untimed run.
"""

from __future__ import annotations

import time

import numpy as np

from ._timing import copy_bandwidth, peak_bytes as _peak, timeit_first_counts as _time

ANGLES = (20.0, 30.0, 15.0)
SLAB_MM = 20.0


# -- data ---------------------------------------------------------------------------------------------------------
def ct_like_volume(size: int, seed: int = 0):
    """A (size, size, size) int16 CT-like Volume at 1 mm, stored = HU + 1024, intercept -1024."""
    import gpukit
    from gpukit.testing import phantom

    nzp = max(2, min(size, 64))
    ph = phantom((nzp, size, size), seed=seed)             # float32 HU, 64 distinct anatomy levels
    rng = np.random.default_rng(seed + 1)
    data = np.empty((size, size, size), np.int16)
    for k in range(size):
        sl = ph[k * nzp // size]
        noise = rng.normal(0.0, 4.0, size=sl.shape).astype(np.float32) * (sl > -990)
        data[k] = np.clip(np.rint(sl + noise + 1024.0), 0, 4095).astype(np.int16)
    aff = np.eye(4)
    aff[:3, 3] = -(size - 1) / 2.0
    return gpukit.Volume(data, aff, {"modality": "CT", "rescale_slope": 1.0, "rescale_intercept": -1024.0})


# -- peers --------------------------------------------------------------------------------------------------------
def _sitk_image(hu16: np.ndarray, vol):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(hu16)
    img.SetOrigin(tuple(float(x) for x in vol.affine[:3, 3]))
    img.SetSpacing(tuple(float(s) for s in np.linalg.norm(vol.affine[:3, :3], axis=0)))
    return img


def _sitk_resample(img, out_aff: np.ndarray, shape, fill: float):
    """ResampleImageFilter onto the grid ``out_aff`` (maps (c, r, s) -> LPS), ``shape`` = (ns, nr, nc); float32 out."""
    import SimpleITK as sitk

    sizes = np.linalg.norm(out_aff[:3, :3], axis=0)
    rf = sitk.ResampleImageFilter()
    rf.SetSize([int(shape[2]), int(shape[1]), int(shape[0])])
    rf.SetOutputOrigin(tuple(float(x) for x in out_aff[:3, 3]))
    rf.SetOutputSpacing(tuple(float(s) for s in sizes))
    rf.SetOutputDirection(tuple(float(x) for x in (out_aff[:3, :3] / sizes).ravel()))
    rf.SetInterpolator(sitk.sitkLinear)
    rf.SetDefaultPixelValue(float(fill))
    rf.SetOutputPixelType(sitk.sitkFloat32)
    return rf.Execute(img)


def _sitk_mip(img, out_aff, shape, fill):
    import SimpleITK as sitk

    return sitk.MaximumProjection(_sitk_resample(img, out_aff, shape, fill), 2)


def _vtk_image(hu16: np.ndarray, vol):
    import vtk
    from vtk.util import numpy_support

    nz, ny, nx = hu16.shape
    img = vtk.vtkImageData()
    img.SetDimensions(nx, ny, nz)
    img.SetSpacing(*(float(s) for s in np.linalg.norm(vol.affine[:3, :3], axis=0)))
    img.SetOrigin(*(float(x) for x in vol.affine[:3, 3]))
    arr = numpy_support.numpy_to_vtk(hu16.ravel(), deep=False, array_type=vtk.VTK_SHORT)
    img.GetPointData().SetScalars(arr)
    img._keep = (hu16, arr)  # the VTK array borrows the numpy buffer
    return img


def _vtk_reslice(img, plane, shape, step: float, fill: float, slab: int = 0):
    """vtkImageReslice on the plane's axes; ``shape`` = (ns, nr, nc) for a volume, or a slab of ``slab`` slices.

    Returns ``run(pose=None)``: the result, on ``pose`` (a plane of the same shape and spacing) when given -- one
    filter whose axes change, as a VTK viewer reslices."""
    import vtk
    from vtk.util import numpy_support

    ns, nr, nc = shape
    dv, du = plane.spacing
    m = vtk.vtkMatrix4x4()

    def axes(p):
        for i in range(3):
            m.SetElement(i, 0, float(p.u[i]))
            m.SetElement(i, 1, float(p.v[i]))
            m.SetElement(i, 2, float(p.normal[i]))
            m.SetElement(i, 3, float(p.center[i]))

    axes(plane)
    r = vtk.vtkImageReslice()
    r.SetInputData(img)
    r.SetResliceAxes(m)
    r.SetOutputSpacing(du, dv, step)
    r.SetOutputOrigin(-(nc - 1) / 2 * du, -(nr - 1) / 2 * dv, -(ns - 1) / 2 * step)
    r.SetOutputExtent(0, nc - 1, 0, nr - 1, 0, ns - 1)
    r.SetInterpolationModeToLinear()
    r.SetOutputScalarType(vtk.VTK_FLOAT)
    r.SetBackgroundLevel(float(fill))
    if slab:
        r.SetSlabModeToMax()
        r.SetSlabNumberOfSlices(int(slab))

    def run(pose=None):
        if pose is not None:        # a new pose of the same shape and spacing: only the axes change
            axes(pose)
            m.Modified()
        r.Modified()
        r.Update()
        out = r.GetOutput()
        return numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(ns, nr, nc)

    return run


def _scipy_plane(hu16, A, b, nr, nc, fill):
    from scipy import ndimage

    r, c = np.mgrid[0:nr, 0:nc].astype(np.float64)
    coords = np.stack([A[2, 0] * c + A[2, 1] * r + b[2], A[1, 0] * c + A[1, 1] * r + b[1],
                       A[0, 0] * c + A[0, 1] * r + b[0]])
    return ndimage.map_coordinates(hu16, coords, order=1, mode="constant", cval=fill, output=np.float32)


def _scipy_affine(hu16, A, b, shape, fill):
    """affine_transform in array-axis order: (k, j, i) = M @ (s, r, c) + offset."""
    from scipy import ndimage

    M = A[::-1, ::-1]
    return ndimage.affine_transform(hu16, M, offset=b[::-1], output_shape=tuple(shape), order=1, mode="constant",
                                    cval=fill, output=np.float32)


def _as_array(x) -> np.ndarray:
    if hasattr(x, "GetPixelID"):            # a SimpleITK image (timed functions return it unconverted)
        import SimpleITK as sitk

        return sitk.GetArrayFromImage(x)
    return np.asarray(getattr(x, "data", x))   # a Volume or an array


def _accuracy(fast, exact) -> dict:
    """Max and median absolute difference of a fast result to the float64 (exact) one, over every value."""
    d = np.abs(_as_array(fast).astype(np.float64) - np.asarray(_as_array(exact), np.float64))
    return {"max_abs_diff_hu": float(d.max()) if d.size else None,
            "median_abs_diff_hu": float(np.median(d)) if d.size else None}


def _pair(rows: list[dict]) -> None:
    """Give every ``... fast`` row its ``... exact`` twin's median and the speed-up (rows of one op, same impl)."""
    by = {(r["op"], r["impl"]): r for r in rows}
    for (op, impl), r in by.items():
        if "fast" in impl:
            twin = by.get((op, impl.replace("fast", "exact")))
            if twin is not None:
                r["exact_median_s"] = twin["median_s"]
                r["speedup_vs_exact"] = twin["median_s"] / r["median_s"]


def _diff(a, b, mask=None) -> dict:
    a = _as_array(a).astype(np.float64).reshape(np.shape(b))
    b = np.asarray(b, np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    d = np.abs(a - b)
    return {"median_abs_diff_hu": float(np.median(d)) if d.size else None,
            "max_abs_diff_hu": float(d.max()) if (d.size and mask is not None) else None}


def _latencies(lat) -> dict:
    """p10/p50/p90/p99/max of per-call wall times (s) and their count."""
    lat = np.asarray(lat, dtype=np.float64)
    p10, p50, p90, p99 = (float(v) for v in np.percentile(lat, [10, 50, 90, 99]))
    return {"median_s": p50, "p10_s": p10, "p90_s": p90, "p99_s": p99, "max_s": float(lat.max()),
            "repeats": int(lat.size)}


def _interleaved(op: str, ours, peers, rounds: int) -> list[dict]:
    """gpukit's ``ours`` and the ``peers`` (each ``[(impl, fn), ...]``) timed in turn: each round calls every one
    once, the starting one rotating, so a burst of load from the machine's neighbours slows all of them, not one
    row. One row each (``impl`` + ", interleaved"); ours carry ``speedup_vs_fastest_peer``, the fastest peer's
    median over their own."""
    contenders = list(ours) + list(peers)
    for _, fn in contenders:
        fn()
    lat = [[] for _ in contenders]
    n = len(contenders)
    for i in range(max(1, rounds)):
        for j in range(n):
            k = (i + j) % n
            t0 = time.perf_counter()
            contenders[k][1]()
            lat[k].append(time.perf_counter() - t0)
    rows = [{"op": op, "impl": f"{impl}, interleaved", **_latencies(t)} for (impl, _), t in zip(contenders, lat)]
    if peers:
        fastest = min(r["median_s"] for r in rows[len(ours):])
        for r in rows[:len(ours)]:
            r["speedup_vs_fastest_peer"] = fastest / r["median_s"]
    return rows


# -- the suite ----------------------------------------------------------------------------------------------------
def run(size: int = 512, repeats: int = 3) -> list[dict]:
    """Time every sampling operation on a ``size^3`` CT-like volume; one dict per (operation, implementation)."""
    import gpukit
    from gpukit import Plane
    from gpukit.backends import available_backends
    from gpukit.ops import sampling
    from gpukit.ops.sampling import index_map

    n = int(size)
    vol = ct_like_volume(n)
    hu16 = (vol.data.astype(np.int32) - 1024).astype(np.int16)
    fill = float(hu16.min())
    backends = [b for b in ("numba", "numpy") if b in available_backends()]
    plane = Plane.rotated(vol, ANGLES, shape=(n, n), spacing=1.0)
    nr, nc = plane.shape
    rows: list[dict] = []

    have = {}
    for mod in ("scipy", "SimpleITK", "vtk"):
        try:
            __import__(mod)
            have[mod] = True
        except ImportError:
            have[mod] = False
    sitk_img = _sitk_image(hu16, vol) if have["SimpleITK"] else None
    vtk_img = _vtk_image(hu16, vol) if have["vtk"] else None

    def add(op, impl, fn, *, ref=None, mask=None, peak=False, reps=repeats, **extra):
        t = _time(fn, reps)
        row = {"op": op, "impl": impl, **t, **extra}
        if ref is not None:
            row.update(_diff(fn(), ref, mask))
        if peak:
            row["peak_bytes"] = _peak(fn)
        rows.append(row)
        return row

    # 1. one oblique plane -----------------------------------------------------------------------------------------
    op = f"oblique plane {nr}x{nc} trilinear ({n}^3 int16)"
    # a plane takes milliseconds: 20 repeats for every contender (3 gave medians that moved 2x between runs)
    prep = max(repeats, 20)
    A, b = index_map(vol.affine, plane.affine)
    ref = gpukit.reslice(vol, plane, backend=backends[0], precision="exact")
    i_idx = np.stack(np.meshgrid(np.arange(nc), np.arange(nr)), -1)  # (nr, nc, 2) as (c, r)
    ijk = i_idx[..., 0:1] * A[:, 0] + i_idx[..., 1:2] * A[:, 1] + b
    inside = np.all((ijk >= 1e-3) & (ijk <= n - 1 - 1e-3), axis=-1)
    for be in backends:
        if be == "numba":
            fast = add(op, "gpukit reslice numba fast", lambda: gpukit.reslice(vol, plane, backend="numba"), peak=True,
                       reps=prep)
            fast.update(_accuracy(gpukit.reslice(vol, plane, backend="numba"), ref))
            add(op, "gpukit reslice numba exact",
                lambda: gpukit.reslice(vol, plane, backend="numba", precision="exact"), peak=True, ref=ref, mask=inside,
                reps=prep)
        else:
            add(op, f"gpukit reslice {be}", lambda be=be: gpukit.reslice(vol, plane, backend=be), peak=True,
                ref=ref, mask=inside, reps=prep)
    if have["scipy"]:
        add(op, "scipy map_coordinates order=1", lambda: _scipy_plane(hu16, A, b, nr, nc, fill), ref=ref,
            mask=inside, peak=True, reps=prep)
    if have["SimpleITK"]:
        import SimpleITK as sitk

        add(op, "SimpleITK ResampleImageFilter linear",
            lambda: _sitk_resample(sitk_img, plane.affine, (1, nr, nc), fill),
            ref=ref, mask=inside, reps=prep)
    if have["vtk"]:
        vr = _vtk_reslice(vtk_img, plane, (1, nr, nc), 1.0, fill)
        add(op, "VTK vtkImageReslice linear", lambda: vr()[0], ref=ref, mask=inside, reps=prep)
    # the same contenders again, interleaved: the ratio that a noisy machine moves least
    peers = []
    if have["SimpleITK"]:
        peers.append(("SimpleITK ResampleImageFilter linear",
                      lambda: _sitk_resample(sitk_img, plane.affine, (1, nr, nc), fill)))
    if have["vtk"]:
        peers.append(("VTK vtkImageReslice linear", lambda: vr()[0]))
    if "numba" in backends and peers:
        ours = [("gpukit reslice numba fast", lambda: gpukit.reslice(vol, plane, backend="numba"))]
        rows.extend(_interleaved(op, ours, peers, 2 * prep))

    # 2. Reslicer latency over random poses ------------------------------------------------------------------------
    op = f"Reslicer latency, oblique {n}x{n} ({n}^3 int16)"
    rng = np.random.default_rng(0)
    poses = [Plane.rotated(vol, rng.uniform(-60, 60, 3), shape=(n, n), spacing=1.0) for _ in range(100)]
    ref0 = gpukit.reslice(vol, poses[0], backend=backends[0], precision="exact")
    layouts = [("numba", "bricked", "fast"), ("numba", "bricked", "exact"), ("numba", "plain", "fast"),
               ("numba", "plain", "exact"), ("numpy", "plain", "exact")]
    for be, layout, prec in [c for c in layouts if c[0] in backends]:
        rs = gpukit.Reslicer(vol, backend=be, layout=layout, precision=prec)
        npos = len(poses) if be != "numpy" else max(3, min(len(poses), 2 * repeats))
        for p in poses[:npos]:
            rs.reslice(p)
        row = {"op": op, "impl": f"gpukit Reslicer {be} ({layout}, {prec})" if be == "numba" else
               f"gpukit Reslicer {be}", **_latencies(rs.latencies)}
        if be == "numba" and prec == "fast":
            row.update(_accuracy(rs.reslice(poses[0]).copy(), ref0))
        rows.append(row)
        del rs
    # the peers on the same new poses, one call each (a new pose's footprint is not in the caches for them either)
    peers = []
    if have["SimpleITK"]:
        peers.append(("SimpleITK ResampleImageFilter linear, new pose each call",
                      lambda p: _sitk_resample(sitk_img, p.affine, (1, nr, nc), fill)))
    if have["vtk"]:
        vpose = _vtk_reslice(vtk_img, plane, (1, nr, nc), 1.0, fill)
        peers.append(("VTK vtkImageReslice linear, new pose each call", lambda p: vpose(p)[0]))
    for impl, fn in peers:
        fn(poses[-1])
        lat = []
        for p in poses:
            t0 = time.perf_counter()
            fn(p)
            lat.append(time.perf_counter() - t0)
        rows.append({"op": op, "impl": impl, **_latencies(lat), **_diff(fn(poses[0]), ref0)})

    # 3. full-volume oblique resample ------------------------------------------------------------------------------
    op = f"oblique resample {n}^3 -> {n}^3 trilinear"
    grid = plane.grid_affine(n, 1.0)
    A, b = index_map(vol.affine, grid)
    ref = gpukit.resample(vol, grid, (n, n, n), backend=backends[0], precision="exact").data
    for be in backends:
        if be == "numba":
            fast = add(op, "gpukit resample numba fast",
                       lambda: gpukit.resample(vol, grid, (n, n, n), backend="numba"), peak=True)
            fast.update(_accuracy(gpukit.resample(vol, grid, (n, n, n), backend="numba").data, ref))
            add(op, "gpukit resample numba exact",
                lambda: gpukit.resample(vol, grid, (n, n, n), backend="numba", precision="exact"))
        else:
            add(op, f"gpukit resample {be}", lambda be=be: gpukit.resample(vol, grid, (n, n, n), backend=be),
                peak=True, ref=ref)
    if have["scipy"]:
        add(op, "scipy affine_transform order=1", lambda: _scipy_affine(hu16, A, b, (n, n, n), fill), ref=ref)
    if have["SimpleITK"]:
        add(op, "SimpleITK ResampleImageFilter linear",
            lambda: _sitk_resample(sitk_img, grid, (n, n, n), fill), ref=ref)
    if have["vtk"]:
        vr = _vtk_reslice(vtk_img, plane, (n, n, n), 1.0, fill)
        add(op, "VTK vtkImageReslice linear", vr, ref=ref)
    del ref

    # 4-5. oblique full MIP and 20 mm slab MIP ---------------------------------------------------------------------
    for label, thickness in ((f"oblique full MIP {n}x{n} rays x {n} steps", float(n - 1)),
                             (f"oblique {SLAB_MM:g} mm slab MIP {n}x{n}", SLAB_MM)):
        ns = int(np.floor(thickness + 1e-6)) + 1
        grid = plane.grid_affine(ns, 1.0)
        A, b = index_map(vol.affine, grid)
        ref = gpukit.project(vol, plane, mode="max", thickness_mm=thickness, step_mm=1.0, backend=backends[0],
                             precision="exact")

        def proj(be, prec="fast"):
            return gpukit.project(vol, plane, mode="max", thickness_mm=thickness, step_mm=1.0, backend=be,
                                  precision=prec)

        for be in backends:
            if be == "numba":
                fast = add(label, "gpukit project numba fast (brick grid cached)", lambda: proj("numba"), peak=True)
                fast.update(_accuracy(proj("numba"), ref))
                add(label, "gpukit project numba exact (brick grid cached)", lambda: proj("numba", "exact"),
                    peak=True)
            else:
                add(label, f"gpukit project {be}", lambda be=be: proj(be), peak=True, ref=ref)
        if "numba" in backends:
            # slice order (shear-warp, an option): a different sampling rule, so its difference to the ray-order
            # float64 result is the rule's, not rounding (median, 99th percentile and largest over the image)
            def sw(prec="fast"):
                return gpukit.project(vol, plane, mode="max", thickness_mm=thickness, step_mm=1.0, backend="numba",
                                      precision=prec, order="slice")

            row = add(label, "gpukit project numba fast, order='slice' (shear-warp)", sw, peak=True)
            d = np.abs(sw().astype(np.float64) - np.asarray(ref, np.float64))
            row.update({"vs_ray_order_median_abs_diff_hu": float(np.median(d)),
                        "vs_ray_order_p99_abs_diff_hu": float(np.percentile(d, 99)),
                        "vs_ray_order_max_abs_diff_hu": float(d.max())})
            row.update({f"vs_slice_exact_{k}": v for k, v in _accuracy(sw(), sw("exact")).items()})
            for prec in ("fast", "exact"):
                def cold(prec=prec):
                    # a volume's first projection: extrema for the fill and, for a big projection, the 8^3 brick grid
                    sampling.clear_caches(vol)
                    return proj("numba", prec)

                add(label, f"gpukit project numba {prec}, first call", cold, ref=ref)
        if have["scipy"]:
            add(label, "scipy affine_transform + max", lambda: _scipy_affine(hu16, A, b, (ns, nr, nc), fill).max(0),
                ref=ref)
        if have["SimpleITK"]:
            add(label, "SimpleITK Resample + MaximumProjection", lambda: _sitk_mip(sitk_img, grid, (ns, nr, nc), fill),
                ref=ref)
        peers = []
        if have["SimpleITK"]:
            peers.append(("SimpleITK Resample + MaximumProjection",
                          lambda: _sitk_mip(sitk_img, grid, (ns, nr, nc), fill)))
        if have["vtk"]:
            vr = _vtk_reslice(vtk_img, plane, (1, nr, nc), 1.0, fill, slab=ns)
            add(label, "VTK vtkImageReslice slab max", lambda: vr()[0], ref=ref)
            peers.append(("VTK vtkImageReslice slab max", lambda: vr()[0]))
        if thickness == SLAB_MM and "numba" in backends and peers:
            # both orders interleaved with the peers (the full MIP's ratios are far from its goal's edge either way)
            rows.extend(_interleaved(label, [("gpukit project numba fast", lambda: proj("numba")),
                                             ("gpukit project numba fast, order='slice'", sw)], peers,
                                     max(10, 3 * repeats)))

    # 5b. rotating MIP about z (frames along directions inside the slices) ----------------------------------------
    if "numba" in backends:
        from gpukit.backends.numba import sampler as nbs

        nang = 8
        op = f"rotating MIP about z, {nang} frames ({n}^3 int16)"

        def rot(prec="fast", nang=nang):
            return gpukit.rotating_mip(vol, nang, backend="numba", precision=prec)

        def rot_ray():
            # the same frames marched in ray order (the slice-order kernel switched off): identical values
            nbs.SLICE_ORDER = False
            try:
                return rot()
            finally:
                nbs.SLICE_ORDER = True

        sl = add(op, "gpukit rotating_mip numba fast (slice order)", rot)
        ray = add(op, "gpukit rotating_mip numba fast (ray order)", rot_ray)
        sl["speedup_vs_ray_order"] = ray["median_s"] / sl["median_s"]
        sl["identical_to_ray_order"] = bool(np.array_equal(rot(), rot_ray()))
        sl.update(_accuracy(rot(nang=2), rot("exact", nang=2)))

    # 6. axis-aligned MIP ------------------------------------------------------------------------------------------
    op = f"axial MIP {n}^3 int16"
    ref = gpukit.project(vol, 0, backend=backends[0], precision="exact")
    for be in backends:
        add(op, f"gpukit project axis 0 {be}", lambda be=be: gpukit.project(vol, 0, backend=be), peak=True,
            ref=ref if be != backends[0] else None)
    add(op, "numpy data.max(axis=0) (stored values)", lambda: vol.data.max(axis=0), ref=ref - -1024.0)
    if have["SimpleITK"]:
        add(op, "SimpleITK MaximumProjection", lambda: sitk.MaximumProjection(sitk_img, 2),
            ref=ref)
    bw = copy_bandwidth(min(256 << 20, max(8 << 20, vol.data.nbytes)), repeats=max(3, repeats))
    floor = vol.data.nbytes / bw
    rows.append({"op": op, "impl": "read floor (bytes / copy bandwidth)", "median_s": floor, "p10_s": floor,
                 "p90_s": floor, "bytes": int(vol.data.nbytes), "copy_bandwidth_Bps": bw})
    _pair(rows)
    return rows


if __name__ == "__main__":  # pragma: no cover
    import sys

    from .__main__ import table

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(table(run(size, reps)))
