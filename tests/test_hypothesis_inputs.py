"""Bad input to every public function, generated (issue 10): wrong dtypes, NaN/inf in affines and windows, zero or
negative sizes, huge requests, non-contiguous and big-endian arrays.

The property, for each entry of ``gpukit.__all__`` that takes arrays or numbers (and the render and NIfTI helpers):
the call either succeeds with a sane result (the promised shape and dtype, finite values where the inputs are
finite) or raises a :class:`gpukit.GpukitError` that says something; never a bare numpy, Numba or Python exception
(those propagate and fail the test). Where the input is plainly wrong (NaN, a zero width, a negative size) the error
is required, not merely allowed. Requests over the work limits are refused before anything large is allocated
(tracemalloc peak).

Defects these properties found in the ops layer are listed at the end (``OPS_DEFECTS``), each with the file and
line where it was and what happened: every such call must now raise a GpukitError.
"""

from __future__ import annotations

import math
import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpukit
from gpukit import Plane, Volume
from gpukit.errors import (GpukitError, InvalidParameterError, NoWindowError, OutputWriteError, ParameterTypeError,
                           UnknownPresetError, WindowParameterError, WorkLimitError)
from gpukit.ops.intensity import window_dtype

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BACKENDS = pytest.mark.parametrize("backend", ["numpy", "numba"])
NAN, INF = float("nan"), float("inf")


def attempt(fn, *args, **kwargs):
    """``(result, None)`` or ``(None, error)`` for a GpukitError (which must say something); any other exception
    propagates and fails the test."""
    try:
        return fn(*args, **kwargs), None
    except GpukitError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return None, exc


def bad_number(x) -> bool:
    """Not a finite real number."""
    return isinstance(x, (bool, str, bytes, type(None))) or not isinstance(x, (int, float)) or not math.isfinite(x)


# -- data as users hand it over --------------------------------------------------------------------------------
NUMERIC = ["int16", "uint16", "int8", "uint8", "int32", "uint32", "int64", "uint64", "float32", "float64",
           "float16", ">i2", ">u2", ">i4", ">f4", ">f8"]
#: dtypes no operation can use (bool is a Volume, a mask, but not something to resample or window)
UNUSABLE = ["complex64", "complex128", "object", "U3", "S2", "V4", "M8[s]", "m8[s]", "longdouble"]
LAYOUTS = {
    "c": lambda a: a,
    "fortran": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "reversed": lambda a: np.ascontiguousarray(a[::-1])[::-1],
    "readonly": lambda a: _readonly(a),
}


def _readonly(a):
    b = a.copy()
    b.flags.writeable = False
    return b


def values(seed: int, shape, dtype, nonfinite: bool = False) -> np.ndarray:
    """Random stored values that fit ``dtype`` (CT-like range), NaN/inf sprinkled in for floats on request."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = max(int(info.min), -1024), min(int(info.max), 3071)
        a = rng.integers(lo, hi, size=shape, endpoint=True).astype(dt)
    else:
        a = (rng.normal(0.0, 600.0, size=shape)).astype(dt)
        if nonfinite and a.size > 2:
            flat = a.reshape(-1)
            flat[rng.integers(0, a.size, 2)] = [np.nan, np.inf]
    return a


def arranged(a: np.ndarray, layout: str) -> np.ndarray:
    x = LAYOUTS[layout](a)
    assert np.array_equal(x, a, equal_nan=True)
    return x


def rotation(angles) -> np.ndarray:
    from gpukit.planes import rotation_matrix

    return rotation_matrix(angles)


def make_affine(seed: int, shear: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rotation(rng.uniform(-40, 40, 3)) @ np.diag(rng.uniform(0.4, 2.5, 3))
    if shear:
        m[:, 2] += m[:, 1] * rng.uniform(-0.3, 0.3)
    aff = np.eye(4)
    aff[:3, :3] = m
    aff[:3, 3] = rng.uniform(-300, 300, 3)
    return aff


shapes3 = st.tuples(st.integers(4, 9), st.integers(4, 10), st.integers(4, 11))
seeds = st.integers(0, 2**31 - 1)


#: every stored dtype on numpy; on numba the common ones (each other dtype is one more set of kernels to compile on a
#: cold cache; big-endian and float16 arrive as int16 and float32, converted once by Volume)
VOLUME_DTYPES = {"numpy": ("int16", "uint16", "int32", "uint64", "float32", "float64", "float16", ">i2", ">f4"),
                 "numba": ("int16", "uint16", "float32", "float16", ">i2")}


@st.composite
def volumes(draw, dtypes=VOLUME_DTYPES["numpy"]):
    """A small Volume of a numeric dtype, any layout, an oblique (maybe sheared) affine and per-slice rescale."""
    seed = draw(seeds)
    shape = draw(shapes3)
    a = values(seed, shape, draw(st.sampled_from(dtypes)))
    x = arranged(a, draw(st.sampled_from(sorted(LAYOUTS))))
    meta = {}
    if draw(st.booleans()):
        rng = np.random.default_rng(seed + 1)
        meta = {"rescale_slope": rng.choice([1.0, 0.5, 2.0], shape[0]),
                "rescale_intercept": rng.choice([-1024.0, 0.0, -1000.5], shape[0])}
    return Volume(x, make_affine(seed, shear=draw(st.booleans())), meta)


def finite(a) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a, dtype=np.float64))))


def data_finite(vol) -> bool:
    d = vol.to_numpy()
    return d.dtype.kind in "iu" or finite(d)


# -- Volume -------------------------------------------------------------------------------------------------
@SETTINGS
@given(dtype=st.sampled_from(NUMERIC + ["bool"] + UNUSABLE), layout=st.sampled_from(sorted(LAYOUTS)),
       shape=shapes3, seed=seeds)
def test_volume_keeps_numeric_data_and_names_any_other_dtype(dtype, layout, shape, seed):
    base = values(seed, shape, "int16")
    a = base > 0 if dtype == "bool" else base.astype(np.longdouble if dtype == "longdouble" else dtype)
    x = LAYOUTS[layout](a)
    vol, err = attempt(Volume, x, make_affine(seed))
    dt = np.dtype(a.dtype)
    if dt.kind in "biu" or (dt.kind == "f" and dt.itemsize <= 8):
        assert err is None, err
        assert vol.shape == shape and vol.data.dtype.isnative
        want = a.astype(np.float32) if dt == np.float16 else a
        assert np.array_equal(vol.to_numpy(), want) and vol.slopes.shape == (shape[0],)
    else:
        assert isinstance(err, ParameterTypeError) and str(dt) in str(err), err


AFFINE_FAULTS = ["none", "huge", "tiny", "nan", "inf", "-inf", "zero column", "repeated column", "coplanar",
                 "bottom row", "3x3", "4x3", "complex", "string", "None", "ragged", "object"]


def corrupt(aff: np.ndarray, fault: str, where: int):
    a = aff.copy()
    i, j = divmod(where % 12, 4)
    if fault == "none":
        return a
    if fault == "huge":
        a[:3, :3] *= 1e200
        return a
    if fault == "tiny":
        a[:3, :3] *= 1e-3
        return a
    if fault in ("nan", "inf", "-inf"):
        a[i, j] = float(fault)
        return a
    if fault == "zero column":
        a[:3, where % 3] = 0.0
        return a
    if fault == "repeated column":
        a[:3, 2] = a[:3, where % 2] * 3.0
        return a
    if fault == "coplanar":
        a[:3, 2] = a[:3, 0] - 0.5 * a[:3, 1]
        return a
    if fault == "bottom row":
        a[3, where % 3] = 1.0
        return a
    return {"3x3": a[:3, :3], "4x3": a[:, :3], "complex": a * (1 + 1j), "string": "eye(4)", "None": None,
            "ragged": [[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
            "object": np.array([[object()] * 4] * 4)}[fault]


@SETTINGS
@given(fault=st.sampled_from(AFFINE_FAULTS), where=st.integers(0, 11), seed=seeds)
def test_volume_affines_are_finite_invertible_4x4_or_refused(fault, where, seed):
    aff = make_affine(seed, shear=bool(seed % 2))
    bad = corrupt(aff, fault, where)
    vol, err = attempt(Volume, values(seed, (4, 5, 6), "int16"), bad)
    if fault in ("none", "huge", "tiny"):
        assert err is None, err
        assert np.array_equal(vol.affine, bad) and all(math.isfinite(s) and s > 0 for s in vol.spacing)
        assert finite(vol.world_to_index(vol.center))
    else:
        assert isinstance(err, (InvalidParameterError, ParameterTypeError)), (fault, err)
        assert isinstance(err, (ValueError, TypeError))


rescale_values = st.one_of(
    st.floats(-1e4, 1e4), st.sampled_from([NAN, INF, -INF, "x", None, 1 + 2j]),
    st.lists(st.floats(-10, 10), min_size=1, max_size=6),
    st.lists(st.sampled_from([1.0, NAN, INF]), min_size=4, max_size=4))


@SETTINGS
@given(slope=rescale_values, intercept=rescale_values, meta_kind=st.sampled_from(["dict", "list", "str", "none"]))
def test_volume_rescale_is_one_finite_number_per_slice_or_refused(slope, intercept, meta_kind):
    meta = {"dict": {"rescale_slope": slope, "rescale_intercept": intercept}, "list": [("a", 1)], "str": "CT",
            "none": None}[meta_kind]
    vol, err = attempt(Volume, np.zeros((4, 3, 3), np.int16), np.eye(4), meta)
    if meta_kind in ("list", "str"):
        assert isinstance(err, ParameterTypeError)
        return
    if meta_kind == "none":
        assert err is None and np.array_equal(vol.slopes, np.ones(4))
        return

    def ok(v):
        if isinstance(v, list):
            return len(v) == 4 and all(math.isfinite(e) for e in v)
        return not bad_number(v)

    if ok(slope) and ok(intercept):
        assert err is None, err
        assert vol.slopes.shape == vol.intercepts.shape == (4,) and finite(vol.slopes) and finite(vol.intercepts)
        assert finite(vol.hu(backend="numpy"))
    else:
        assert isinstance(err, InvalidParameterError), err


# -- Plane ---------------------------------------------------------------------------------------------------
nums = st.one_of(st.floats(-200, 200), st.sampled_from([0.0, NAN, INF, -INF, 1e300, -1e300, 1e-300]))
vec3 = st.one_of(st.tuples(nums, nums, nums), st.sampled_from([(0, 0, 0), (1, 0), None, "abc", (1, 2, 3, 4)]))
unit3 = st.one_of(st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)), vec3)
shape2 = st.one_of(st.tuples(st.integers(-2, 24), st.integers(-2, 24)),
                   st.sampled_from([(0, 5), (5, 0), (NAN, 3), (2.5, 3), (3.0, 4.0), (10**30, 3), (10**70, 4),
                                    (True, 3), 3, None, "ab", (1, 2, 3), (INF, 2)]))
spacing2 = st.one_of(st.floats(0.05, 5), st.sampled_from([0, -1, NAN, INF, 1e-300, 5e-324, 1e300, (1, NAN),
                                                           (0.5, 0.7), (0.5, -0.7), "a", None, (1, 2, 3)]))


def check_plane(p: Plane) -> None:
    assert isinstance(p, Plane)
    assert finite(p.center) and finite(p.u) and finite(p.v) and finite(p.affine)
    assert abs(np.linalg.norm(p.u) - 1) < 1e-9 and abs(np.linalg.norm(p.v) - 1) < 1e-9 and abs(p.u @ p.v) < 1e-9
    assert len(p.shape) == 2 and all(isinstance(n, int) and n >= 1 for n in p.shape)
    assert len(p.spacing) == 2 and all(math.isfinite(s) and s > 0 for s in p.spacing)


def plain_bad_shape(shape) -> bool:
    """A shape that is plainly wrong (a size below 1, NaN, a fraction, not two numbers)."""
    if shape is None or isinstance(shape, (str, int)) or len(shape) != 2:
        return True
    return any(isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n != int(n) or n < 1
               for n in shape)


def plain_bad_spacing(sp) -> bool:
    if sp is None or isinstance(sp, str):
        return True
    t = sp if isinstance(sp, tuple) else (sp, sp)
    return len(t) != 2 or any(not math.isfinite(s) or s <= 0 for s in t)


@SETTINGS
@given(kind=st.sampled_from(["axial", "coronal", "sagittal", "rotated", "oblique", "from_points", "init", "moved"]),
       a=vec3, b=unit3, c=unit3, shape=st.one_of(st.none(), shape2), spacing=st.one_of(st.none(), spacing2),
       pos=st.one_of(st.none(), nums), seed=seeds)
def test_plane_constructors_give_an_orthonormal_finite_plane_or_a_typed_error(kind, a, b, c, shape, spacing, pos,
                                                                               seed):
    vol = Volume(np.zeros((5, 6, 7), np.int16), make_affine(seed))
    if kind in ("axial", "coronal", "sagittal"):
        p, err = attempt(getattr(Plane, kind), vol, position_mm=pos, shape=shape, spacing=spacing)
        plain_bad = pos is not None and bad_number(pos)
    elif kind == "rotated":
        p, err = attempt(Plane.rotated, vol, a, shape=shape, spacing=spacing)
        plain_bad = a is None or isinstance(a, str) or len(a) != 3 or any(bad_number(x) for x in a)
    elif kind == "oblique":
        p, err = attempt(Plane.oblique, vol.center, b, c, shape, 1.0 if spacing is None else spacing)
        plain_bad = shape is None or plain_bad_shape(shape)
    elif kind == "from_points":
        p, err = attempt(Plane.from_points, a, b, c, shape=shape, spacing=spacing,
                         volume=vol if seed % 2 else None)
        plain_bad = any(v is None or isinstance(v, str) or len(v) != 3 or any(bad_number(x) for x in v)
                        for v in (a, b, c))
    elif kind == "init":
        p, err = attempt(Plane, a, (1, 0, 0), (0, 1, 0), shape, (1.0 if spacing is None else spacing))
        plain_bad = (a is None or isinstance(a, str) or len(a) != 3 or any(bad_number(x) for x in a)
                     or plain_bad_shape(shape) or plain_bad_spacing(1.0 if spacing is None else spacing))
    else:
        p, err = attempt(Plane.axial(vol).moved, pos if pos is not None else "a")
        plain_bad = pos is None or bad_number(pos)
    if shape is not None and plain_bad_shape(shape) and kind != "moved":
        plain_bad = True
    if spacing is not None and plain_bad_spacing(spacing) and kind != "moved":
        plain_bad = True
    if err is None:
        assert not plain_bad, (kind, a, b, c, shape, spacing, pos)
        check_plane(p)
        if shape is not None and kind not in ("moved",):
            assert p.shape == tuple(int(n) for n in shape)
    else:
        assert isinstance(err, (InvalidParameterError, ParameterTypeError)), err


# -- rescale and window ----------------------------------------------------------------------------------------
widths = st.one_of(st.floats(-10, 5000), st.sampled_from([0.0, 0.5, 1.0, NAN, INF, -INF, 1e-300, 1e30]))
centers = st.one_of(st.floats(-3000, 3000), st.sampled_from([NAN, INF, -INF, 1e30]))
FUNCTIONS = ["LINEAR", "LINEAR_EXACT", "SIGMOID", "linear", "Linear exact", "sigmoid", "CUBIC", "", 5]
OUT_RANGES = [(0, 255), (0, 4095), (-1024, 3071), (0.0, 1.0), (-1.0, 1.0), (255, 0), (0, 0), (0, NAN), (0,),
              "0-255", (True, 3)]
PRESETS = ["lung", "Soft tissue", "soft-tissue", "bone", "brain", "head", "lungz", "", 5, None]


@st.composite
def host_arrays(draw, dtypes=tuple(NUMERIC)):
    seed = draw(seeds)
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    a = values(seed, shape, draw(st.sampled_from(dtypes)), nonfinite=draw(st.booleans()))
    return a, arranged(a, draw(st.sampled_from(sorted(LAYOUTS))))


#: array dtypes per backend for the intensity kernels (numba compiles one set per dtype on a cold cache)
ARRAY_DTYPES = {"numpy": tuple(NUMERIC), "numba": ("int16", "uint16", "uint8", "float32", "float64", "float16", ">i2",
                                                   ">f4")}


@BACKENDS
@SETTINGS
@given(data=st.data(), center=centers, width=widths, function=st.sampled_from(FUNCTIONS + [None]),
       preset=st.sampled_from(PRESETS), use_preset=st.booleans(), out_range=st.sampled_from(OUT_RANGES),
       invert=st.booleans())
def test_window_gives_values_in_the_output_range_or_says_which_parameter(backend, data, center, width, function,
                                                                          preset, use_preset, out_range, invert):
    a, x = data.draw(host_arrays(ARRAY_DTYPES[backend]), label="array")
    kw = dict(function=function, out_range=out_range, invert=invert, backend=backend)
    if use_preset:
        out, err = attempt(gpukit.window, x, preset=preset, **kw)
    else:
        out, err = attempt(gpukit.window, x, center, width, **kw)
    fn = function.strip().upper().replace(" ", "_") if isinstance(function, str) else function
    plain_bad = fn not in (None, "LINEAR", "LINEAR_EXACT", "SIGMOID")
    if not use_preset:
        plain_bad |= bad_number(center) or bad_number(width) or not width > 0
        plain_bad |= fn in (None, "LINEAR") and not width >= 1
    else:
        plain_bad |= preset not in ("lung", "Soft tissue", "soft-tissue", "bone", "brain", "head")
    plain_bad |= out_range in ((255, 0), (0, 0), (0, NAN), (0,), "0-255", (True, 3))
    if err is None:
        assert not plain_bad, (center, width, function, preset, out_range)
        lo, hi = out_range
        assert out.shape == a.shape and out.dtype == window_dtype(out_range)
        assert finite(out) and np.all(out >= lo) and np.all(out <= hi)
        if backend != "numpy":
            ref = gpukit.window(a, center, width, **dict(kw, backend="numpy")) if not use_preset else \
                gpukit.window(a, preset=preset, **dict(kw, backend="numpy"))
            assert np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)), initial=0.0) <= \
                (1.0 if out.dtype.kind in "iu" else 1e-5 * (hi - lo))
    else:
        assert plain_bad, err
        assert isinstance(err, (WindowParameterError, ParameterTypeError, UnknownPresetError, NoWindowError)), err


@BACKENDS
@SETTINGS
@given(data=st.data(), extra=st.sampled_from([None, None, None, "bool", "complex64"]),
       slope=st.one_of(st.floats(-100, 100), st.sampled_from([NAN, INF, -INF, 0.0])),
       intercept=st.one_of(st.floats(-5000, 5000), st.sampled_from([NAN, INF])), per_slice=st.booleans())
def test_rescale_keeps_the_shape_and_finiteness_or_names_the_parameter(backend, data, extra, slope, intercept,
                                                                        per_slice):
    a, x = data.draw(host_arrays(ARRAY_DTYPES[backend] if extra is None else (extra,)), label="array")
    nz = a.shape[0] if a.ndim == 3 else (1 if a.ndim < 3 else int(np.prod(a.shape[:-2])))
    s = np.full(nz, slope) if per_slice else slope
    out, err = attempt(gpukit.rescale, x, s, intercept, backend=backend)
    if a.dtype.kind in "bc":
        assert isinstance(err, ParameterTypeError), err
        return
    if bad_number(slope) or bad_number(intercept):
        assert isinstance(err, WindowParameterError), err
        return
    assert err is None, err
    assert out.shape == a.shape and out.dtype in (np.int16, np.float32)
    if a.dtype.kind in "iu" or finite(a):
        assert finite(out)
    with np.errstate(invalid="ignore", over="ignore"):
        want = a.astype(np.float64) * slope + intercept
    np.testing.assert_allclose(out.astype(np.float64), want, rtol=1e-6, atol=1e-3 * (1 + abs(intercept)))


# -- geometric operations --------------------------------------------------------------------------------------
WINDOWS = [None, None, (40, 400), (-600, 1500), (NAN, 400), (40, INF), (40, 0), (40, 0.5), "lung", 40, (1, 2, 3)]
FILLS = [None, 0.0, -1000.0, 1e30, NAN, INF]
INTERPS = ["linear", "nearest", "cubic"]


def window_ok(w) -> bool:
    return w is None or (isinstance(w, tuple) and len(w) == 2 and not any(bad_number(v) for v in w) and w[1] >= 1)


@BACKENDS
@SETTINGS
@given(data=st.data(), angles=st.tuples(st.floats(-180, 180), st.floats(-180, 180), st.floats(-180, 180)),
       shape=st.tuples(st.integers(1, 12), st.integers(1, 12)), spacing=st.floats(0.3, 3.0),
       window=st.sampled_from(WINDOWS), fill=st.sampled_from(FILLS), interp=st.sampled_from(INTERPS))
def test_reslice_returns_the_plane_image_or_a_typed_error(backend, data, angles, shape, spacing, window, fill, interp):
    vol = data.draw(volumes(VOLUME_DTYPES[backend]), label="vol")
    plane = Plane.rotated(vol, angles, shape=shape, spacing=spacing)
    img, err = attempt(gpukit.reslice, vol, plane, interp=interp, fill=fill, window=window, backend=backend)
    plain_bad = interp == "cubic" or not window_ok(window) or (fill is not None and math.isnan(fill))
    if err is None:
        assert not plain_bad, (window, fill, interp)
        assert img.shape == shape and img.dtype == (np.float32 if window is None else np.uint8)
        if data_finite(vol) and (fill is None or math.isfinite(fill)):
            assert finite(img)
    else:
        assert plain_bad, err
        assert isinstance(err, (InvalidParameterError, ParameterTypeError, WindowParameterError)), err


OUT_AFFINES = ["random", "nan", "inf", "zero column", "coplanar", "bottom row", "3x3", "string", "None"]
GRID_SHAPES = [(2, 3, 4), (1, 1, 1), (3, 3, 3.0), (0, 3, 3), (3, -1, 3), (2.5, 3, 3), (NAN, 3, 3), (3, 3), None,
               "abc", (10**6, 10**6, 10**6), (10**30, 2, 2), (INF, 2, 2)]


@BACKENDS
@SETTINGS
@given(data=st.data(), fault=st.sampled_from(OUT_AFFINES), where=st.integers(0, 11), shape=st.sampled_from(GRID_SHAPES),
       interp=st.sampled_from(["linear", "nearest"]), seed=seeds)
def test_resample_returns_a_volume_on_the_grid_or_a_typed_error(backend, data, fault, where, shape, interp, seed):
    vol = data.draw(volumes(VOLUME_DTYPES[backend]), label="vol")
    aff = corrupt(make_affine(seed), "none" if fault == "random" else fault, where)
    out, err = attempt(gpukit.resample, vol, aff, shape, interp=interp, backend=backend)
    if isinstance(shape, tuple) and len(shape) == 3 and all(isinstance(n, int) for n in shape) and \
            math.prod(shape) > gpukit.set_limits()["max_samples"]:
        assert isinstance(err, WorkLimitError) and "limit" in str(err), err      # checked before the affine
        return
    plain_bad = fault != "random" or shape is None or isinstance(shape, str) or len(shape) != 3 or any(
        not math.isfinite(n) or n != int(n) or n < 1 for n in shape)
    if err is None:
        assert not plain_bad, (fault, shape)
        assert isinstance(out, Volume) and out.shape == tuple(int(n) for n in shape)
        assert out.dtype in (np.float32, np.int16) and np.array_equal(out.affine, aff)
        if data_finite(vol):
            assert finite(out.data)
    else:
        assert plain_bad, err
        assert isinstance(err, (InvalidParameterError, ParameterTypeError)), err


THICKNESS = [None, None, 0.0, 0.5, 3.0, -1.0, NAN, INF, 1e30]
STEPS = [None, None, 0.4, 1.3, 0.0, -1.0, NAN, INF, 1e-30]
AXES = [0, 1, 2, "axial", "coronal", "sagittal", "Axial", "plane", 3, -1, True, 1.5, None, "axail"]


@BACKENDS
@SETTINGS
@given(data=st.data(), where=st.sampled_from(AXES), thickness=st.sampled_from(THICKNESS), step=st.sampled_from(STEPS),
       mode=st.sampled_from(["max", "min", "mean", "median"]), angles=st.tuples(st.floats(-90, 90), st.floats(-90, 90),
                                                                               st.floats(-90, 90)))
def test_project_returns_a_finite_2d_image_or_a_typed_error(backend, data, where, thickness, step, mode, angles):
    vol = data.draw(volumes(VOLUME_DTYPES[backend]), label="vol")
    target = Plane.rotated(vol, angles, shape=(7, 6)) if where == "plane" else where
    img, err = attempt(gpukit.project, vol, target, mode=mode, thickness_mm=thickness, step_mm=step, backend=backend)
    plain_bad = mode == "median" or isinstance(where, bool) or where in (3, -1, 1.5, None, "axail")
    plain_bad |= thickness is not None and not thickness >= 0
    step_bad = step is not None and not (step > 0 and math.isfinite(step))
    if where == "plane":                         # a name samples along a plane too when the volume is oblique
        plain_bad |= step_bad
        if not plain_bad and ((step == 1e-30 and thickness != 0) or (thickness is not None and thickness > 1e20)):
            assert isinstance(err, WorkLimitError), err
    if err is None:
        assert not plain_bad, (where, thickness, step, mode)
        assert img.ndim == 2 and img.dtype == np.float32 and min(img.shape) >= 1
        if where == "plane":
            assert img.shape == (7, 6)
        if data_finite(vol):
            assert finite(img)
    else:
        assert isinstance(err, (InvalidParameterError, ParameterTypeError)), err
        assert plain_bad or isinstance(err, WorkLimitError) or (isinstance(where, str) and step_bad), err


@BACKENDS
@FEW
@given(vol=volumes(("int16", ">i2", "float32")), n=st.sampled_from([1, 2, 3, 0, -1, -7, 10**9, 10**12]),
       axis=st.sampled_from(["x", "y", "z", "Z", "w", (0, 0, 1), (1, 1, 0), (0.2, -1, 0.3), (NAN, 0, 1)]),
       spacing=st.sampled_from([None, 0.9, 2.0, 1e-30]),
       shape=st.sampled_from([None, (5, 6), (0, 3), (3, -2), (NAN, 3), (10**9, 10**9)]),
       mode=st.sampled_from(["max", "min", "mean"]))
def test_rotating_mip_returns_n_finite_frames_or_a_typed_error(backend, vol, n, axis, spacing, shape, mode):
    frames, err = attempt(gpukit.rotating_mip, vol, n, axis, mode=mode, spacing=spacing, shape=shape, backend=backend)
    plain_bad = n < 1 or axis in ("w", (NAN, 0, 1))
    plain_bad |= shape is not None and (not all(math.isfinite(s) for s in shape) or min(shape) < 1)
    if err is None:
        assert not plain_bad, (n, axis, spacing, shape)
        assert frames.ndim == 3 and frames.shape[0] == n and frames.dtype == np.float32
        if shape is not None:
            assert frames.shape[1:] == shape
        if data_finite(vol):
            assert finite(frames)
    else:
        assert isinstance(err, (InvalidParameterError, ParameterTypeError)), err
        assert plain_bad or isinstance(err, WorkLimitError), err
        if n >= 10**9 and not plain_bad:
            assert isinstance(err, WorkLimitError)


@BACKENDS
@FEW
@given(data=st.data(), window=st.sampled_from(WINDOWS), fill=st.sampled_from(FILLS),
       interp=st.sampled_from(INTERPS), layout=st.sampled_from(["auto", "plain", "bricked", "tiles"]),
       angles=st.tuples(st.floats(-90, 90), st.floats(-90, 90), st.floats(-90, 90)),
       shape=st.tuples(st.integers(1, 9), st.integers(1, 9)), out_kind=st.sampled_from([None, "right", "wrong"]))
def test_reslicer_gives_the_reslice_image_or_a_typed_error(backend, data, window, fill, interp, layout, angles, shape,
                                                           out_kind):
    vol = data.draw(volumes(VOLUME_DTYPES[backend]), label="vol")
    rs, err = attempt(gpukit.Reslicer, vol, backend=backend, interp=interp, fill=fill, window=window, layout=layout)
    plain_bad = interp == "cubic" or not window_ok(window) or (fill is not None and math.isnan(fill))
    plain_bad |= layout == "tiles" or (layout == "bricked" and backend == "numpy")
    if err is not None:
        assert plain_bad and isinstance(err, (InvalidParameterError, ParameterTypeError, WindowParameterError)), err
        return
    assert not plain_bad, (window, fill, interp, layout)
    plane = Plane.rotated(vol, angles, shape=shape)
    want = np.float32 if window is None else np.uint8
    out = {None: None, "right": np.empty(shape, want), "wrong": np.empty(shape[::-1] + (1,), want)}[out_kind]
    img, err = attempt(rs.reslice, plane, out=out)
    if out_kind == "wrong":
        assert isinstance(err, InvalidParameterError), err
        return
    assert err is None, err
    assert img.shape == shape and img.dtype == want
    ref = gpukit.reslice(vol, plane, interp=interp, fill=fill, window=window, backend="numpy")
    tol = 1 if window is not None else 1e-3 * max(1.0, float(np.nanmax(np.abs(ref), initial=0.0)))
    assert np.allclose(img.astype(np.float64), ref.astype(np.float64), atol=tol, equal_nan=True)


# -- the work limits: refused before anything large is allocated ---------------------------------------------------
@st.composite
def requests(draw):
    """``(name, call, samples, output elements)`` of an operation on a small volume."""
    kind = draw(st.sampled_from(["reslice", "resample", "slab", "rotating_mip", "axial"]))
    big = st.one_of(st.integers(1, 200), st.integers(200, 10**7))
    if kind == "reslice":
        nr, nc = draw(big), draw(big)
        return kind, lambda v, be: gpukit.reslice(v, Plane.axial(v, shape=(nr, nc)), backend=be), nr * nc, nr * nc
    if kind == "axial":
        nr, nc = draw(big), draw(big)
        return kind, lambda v, be: gpukit.project(v, Plane.axial(v, shape=(nr, nc)), thickness_mm=0,
                                                  backend=be), nr * nc, nr * nc
    if kind == "resample":
        shp = (draw(big), draw(st.integers(1, 40)), draw(big))
        return kind, lambda v, be: gpukit.resample(v, np.eye(4), shp, backend=be), math.prod(shp), math.prod(shp)
    if kind == "slab":
        t = draw(st.one_of(st.floats(0, 50), st.floats(50, 1e12)))
        ns = math.floor(t / 0.5 + 1e-6) + 1
        return kind, lambda v, be: gpukit.project(v, Plane.axial(v, shape=(8, 8)), thickness_mm=t, step_mm=0.5,
                                                  backend=be), ns * 64, 64
    n = draw(st.one_of(st.integers(1, 3), st.integers(1000, 10**9)))
    return kind, lambda v, be: gpukit.rotating_mip(v, n, shape=(6, 6), spacing=1.0, backend=be), n * 6 * 6, n * 36


@BACKENDS
@SETTINGS
@given(req=requests())
def test_requests_over_the_limits_are_refused_before_allocating(backend, req):
    kind, call, samples, elements = req
    vol = Volume(values(3, (6, 7, 8), "int16"), np.diag([1.0, 1.0, 1.0, 1.0]))
    # caches (extrema, bricks) and compiled kernels are built outside the measurement
    gpukit.reslice(vol, Plane.axial(vol, shape=(2, 2)), backend=backend)
    gpukit.project(vol, Plane.axial(vol, shape=(2, 2)), thickness_mm=2.0, step_mm=0.5, backend=backend)
    gpukit.resample(vol, np.eye(4), (2, 2, 2), backend=backend)
    gpukit.rotating_mip(vol, 1, shape=(2, 2), spacing=1.0, backend=backend)
    old = gpukit.set_limits()
    gpukit.set_limits(max_samples=40_000, max_output_bytes=64 << 10)
    tracemalloc.start()
    try:
        out, err = attempt(call, vol, backend)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gpukit.set_limits(**old)
    if elements * 4 > (64 << 10) or (kind != "rotating_mip" and samples > 40_000):
        assert isinstance(err, WorkLimitError), (kind, samples, elements, err)
        assert "limit" in str(err)
        assert peak < 1 << 20, f"{peak / 2**20:.1f} MiB allocated before refusing {kind}"
    elif err is not None:
        assert isinstance(err, WorkLimitError), err           # a rotating MIP also counts its ray samples
    else:
        assert peak < 64 << 20, f"{peak / 2**20:.1f} MiB for a request within the limits"


@SETTINGS
@given(v=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**20),
                   st.sampled_from(["1e9", None, True, [1e9]])),
       key=st.sampled_from(["max_samples", "max_output_bytes"]))
def test_set_limits_takes_positive_finite_numbers_only(v, key):
    old = gpukit.set_limits()
    try:
        now, err = attempt(gpukit.set_limits, **{key: v})
        if v is None:
            assert err is None and now == old
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 1:
            assert err is None and now[key] == int(v)
        else:
            assert isinstance(err, InvalidParameterError) and gpukit.set_limits() == old, err
    finally:
        gpukit.set_limits(**old)


# -- render helpers ------------------------------------------------------------------------------------------------
RENDER_WINDOWS = ["auto", None, "lung", "lungz", (40, 400), (NAN, 400), (40, 0), (40,), 5, (40, INF), ("a", "b")]


@SETTINGS
@given(arr=host_arrays(NUMERIC + ["bool", "complex64"]), window=st.sampled_from(RENDER_WINDOWS),
       projection=st.booleans(), invert=st.sampled_from([None, True, False]))
def test_display_gives_uint8_pictures_or_a_typed_error(arr, window, projection, invert):
    from gpukit.render import display

    a, x = arr
    img, err = attempt(display, x, window, backend="numpy", invert=invert, projection=projection)
    plain_bad = a.dtype.kind == "c" or window in ("lungz", (NAN, 400), (40, 0), (40,), 5, (40, INF), ("a", "b"))
    if err is None:
        assert not plain_bad, (a.dtype, window)
        assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == a.shape
    else:
        assert plain_bad, err
        assert isinstance(err, (WindowParameterError, ParameterTypeError, UnknownPresetError, NoWindowError)), err


@SETTINGS
@given(name=st.sampled_from(["axial", "coronal", "sagittal", "oblique", "axail", None]),
       spacing=st.sampled_from([None, 0.7, 0, -1, NAN, INF, "a"]), pos=st.sampled_from([None, 3.0, NAN, -INF]),
       normal=st.sampled_from([None, (0, 0, 1), (1, 1, 1), (0, 0, 0), (NAN, 0, 1), (1, 0)]),
       angles=st.sampled_from([None, (10, 20, 30), (NAN, 0, 0), (1, 2)]), seed=seeds)
def test_plane_for_gives_a_plane_or_a_typed_error(name, spacing, pos, normal, angles, seed):
    from gpukit.render import plane_for

    vol = Volume(np.zeros((5, 6, 7), np.int16), make_affine(seed))
    p, err = attempt(plane_for, vol, name, spacing=spacing, position_mm=pos, normal=normal, angles_deg=angles)
    plain_bad = name not in ("axial", "coronal", "sagittal", "oblique") or (spacing is not None and (
        isinstance(spacing, str) or not (math.isfinite(spacing) and spacing > 0))) or (
        pos is not None and not math.isfinite(pos))
    if name == "oblique":
        plain_bad |= normal in ((0, 0, 0), (NAN, 0, 1), (1, 0)) or (normal is None and angles in ((NAN, 0, 0), (1, 2)))
    if err is None:
        assert not plain_bad, (name, spacing, pos, normal, angles)
        check_plane(p)
    else:
        assert plain_bad, err
        assert isinstance(err, (InvalidParameterError, ParameterTypeError)), err


@SETTINGS
@given(text=st.one_of(st.none(), st.text(max_size=12), st.integers(), st.floats(),
                      st.sampled_from(["-600,1500", "40:400", "lung", "file", "nan,1"])))
def test_parse_window_reads_text_or_refuses_anything_else(text):
    from gpukit.render import parse_window

    spec, err = attempt(parse_window, text)
    if text is not None and not isinstance(text, str):
        assert isinstance(err, ParameterTypeError)
        return
    assert err is None
    assert spec is None or isinstance(spec, str) or (isinstance(spec, tuple) and len(spec) == 2
                                                     and all(isinstance(v, float) for v in spec))


# -- NIfTI export ------------------------------------------------------------------------------------------------------
@FEW
@given(dtype=st.sampled_from(NUMERIC + ["bool"]), big=st.booleans(), layout=st.sampled_from(sorted(LAYOUTS)),
       where=st.sampled_from(["file.nii", "file.nii.gz", "new/dir/file.nii", "folder", "", "nul", 5, None]),
       hu=st.booleans(), seed=seeds)
def test_to_nifti_writes_what_it_holds_or_says_why_not(tmp_path_factory, dtype, big, layout, where, hu, seed):
    import nibabel as nib

    a = values(seed, (3, 4, 5), "int16") > 0 if dtype == "bool" else values(seed, (3, 4, 5), dtype)
    if big and a.dtype.kind in "iu" and a.dtype.itemsize == 8:
        a[0, 0, 0] = np.iinfo(a.dtype).max                       # does not fit int32: kept as it is
    vol = Volume(arranged(a, layout), make_affine(seed, shear=bool(seed % 2)))
    tmp = tmp_path_factory.mktemp("nii")
    (tmp / "folder").mkdir()
    path = {"nul": str(tmp / "a\0b.nii"), "": "", 5: 5, None: None}.get(where, str(tmp / str(where)))
    img, err = attempt(vol.to_nifti, path, hu=hu)
    if hu and a.dtype.kind == "b":
        assert isinstance(err, ParameterTypeError), err          # booleans are not rescaled
        return
    if where in ("folder", "", "nul", 5):
        assert isinstance(err, (OutputWriteError, InvalidParameterError, ParameterTypeError)), err
        assert not [p for p in os.listdir(tmp) if p != "folder"], "a failed write left files behind"
        return
    assert err is None, err
    got = nib.load(path) if path is not None else img
    data = np.asarray(got.dataobj).T                              # unit rescale: the stored values as they are
    want = vol.hu(backend="numpy") if hu else vol.to_numpy()
    assert data.shape == want.shape and np.array_equal(data.astype(np.float64), want.astype(np.float64))
    np.testing.assert_allclose(got.affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine, atol=1e-4)


# -- defects found in the ops layer: each call must raise a GpukitError (the 'where' argument names the old defect) ----
def _small():
    return Volume(values(7, (4, 5, 6), "int16"), np.diag([0.8, 0.8, 2.0, 1.0]))


OPS_DEFECTS = [
    ("datetime array to rescale", lambda v: gpukit.rescale(np.zeros((2, 2), "M8[s]"), backend="numpy"),
     "gpukit/ops/intensity.py:40 _is_volume: hasattr(x, 'data') raises ValueError for datetime64 arrays"),
    ("float128 array to numba window", lambda v: gpukit.window(np.zeros((2, 2), np.longdouble), 40, 400,
                                                               backend="numba"),
     "gpukit/ops/intensity.py _check_values_dtype passes float128 on: Numba TypingError"),
    ("non-numeric file window", lambda v: gpukit.window(v.with_data(v.data, window_center=["a"], window_width=[400]),
                                                        backend="numpy"),
     "gpukit/ops/intensity.py:191 file_window: float('a') ValueError"),
    ("NaN file window", lambda v: gpukit.window(v.with_data(v.data, window_center=[NAN], window_width=[400]),
                                                backend="numpy"),
     "gpukit/ops/intensity.py:191 file_window returns NaN unchecked: a silently meaningless image"),
    ("out_range beyond float32", lambda v: gpukit.window(np.zeros(3), 40, 400, out_range=(0.0, 1e300),
                                                         backend="numpy"),
     "gpukit/ops/intensity.py _out_range: (0, 1e300) overflows float32 to inf with finite inputs"),
    ("string slope", lambda v: gpukit.rescale(v.data, "a", 0, backend="numpy"),
     "gpukit/ops/intensity.py:88 _per_slice: np.asarray('a', float64) ValueError"),
    ("None volume to reslice", lambda v: gpukit.reslice(None, Plane.axial(v), backend="numpy"),
     "gpukit/ops/residency.py:40 _host_data: AttributeError on a non-Volume"),
    ("array volume to resample", lambda v: gpukit.resample(v.data, np.eye(4), (2, 2, 2), backend="numpy"),
     "gpukit/ops/residency.py:40/76: AttributeError / unhashable ndarray for an array given as the volume"),
    ("string fill", lambda v: gpukit.reslice(v, Plane.axial(v), fill="a", backend="numpy"),
     "gpukit/ops/residency.py:160 _fill_value: float('a') ValueError"),
    ("string thickness", lambda v: gpukit.project(v, 0, thickness_mm="a", backend="numpy"),
     "gpukit/ops/sampling.py:283/310: 'a' >= 0 TypeError"),
    ("string step", lambda v: gpukit.project(v, Plane.axial(v), step_mm="a", backend="numpy"),
     "gpukit/ops/sampling.py:303 _plane_grid: float('a') ValueError"),
    ("NaN n_angles", lambda v: gpukit.rotating_mip(v, NAN, backend="numpy"),
     "gpukit/ops/sampling.py:432 int(n_angles): ValueError (inf: OverflowError, None: TypeError, 1.5 truncated)"),
    ("two-number axis", lambda v: gpukit.rotating_mip(v, 2, axis=(1, 0), backend="numpy"),
     "gpukit/ops/sampling.py:441 reshape(3) ValueError"),
    ("zero spacing", lambda v: gpukit.rotating_mip(v, 2, spacing=0, backend="numpy"),
     "gpukit/ops/sampling.py:449 ZeroDivisionError (NaN: ValueError; negative: 'shape must be ...' message)"),
    ("None volume to Reslicer", lambda v: gpukit.Reslicer(None, backend="numpy"),
     "gpukit/ops/reslicer.py:104 -> residency.py:40 AttributeError"),
    ("name given to Reslicer.reslice", lambda v: gpukit.Reslicer(v, backend="numpy").reslice("axial"),
     "gpukit/ops/reslicer.py:128 plane.shape AttributeError"),
    ("list as Reslicer out", lambda v: gpukit.Reslicer(v, backend="numpy").reslice(Plane.axial(v), out=[0]),
     "gpukit/ops/reslicer.py:132 out.shape AttributeError"),
]


@pytest.mark.parametrize("what, call, where", OPS_DEFECTS, ids=[e[0] for e in OPS_DEFECTS])
def test_ops_layer_defects(what, call, where):
    out, err = attempt(call, _small())
    assert isinstance(err, GpukitError), f"{what}: gave {out!r} / {err!r} (was: {where})"


def test_reslicer_refuses_planes_over_the_limits_before_allocating():
    vol = _small()
    rs = gpukit.Reslicer(vol, backend="numpy")
    old = gpukit.set_limits()
    gpukit.set_limits(max_samples=1000, max_output_bytes=4 << 10)
    tracemalloc.start()
    try:
        out, err = attempt(rs.reslice, Plane.axial(vol, shape=(600, 600)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gpukit.set_limits(**old)
    assert isinstance(err, WorkLimitError) and peak < 1 << 20
