"""The strict CuPy-like stand-in device array: refusals, agreement with numpy, views, and copy accounting.

Expected values are computed with numpy on the original host arrays (never copied from the stand-in's output),
and expected copy counts are derived from the scripted sequence of uploads and downloads in each test.
"""

from __future__ import annotations

import copy
import io
import operator
import pickle
import sys
import threading

import numpy as np
import pytest

from gpukit.backends import standin
from gpukit.backends.standin import DeviceArray, count_copies, xp


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def pair(rng):
    """A random host array and its device twin (uploaded before any test counter opens)."""
    host = rng.normal(size=(5, 7)).astype(np.float32)
    return host, xp.asarray(host)


def assert_no_copies(c: standin.CopyCounts) -> None:
    assert (c.h2d, c.d2h, c.h2d_bytes, c.d2h_bytes) == (0, 0, 0, 0)


# --------------------------------------------------------------------------- refusals

IMPLICIT = [
    pytest.param(np.asarray, id="np.asarray"),
    pytest.param(np.array, id="np.array"),
    pytest.param(np.asanyarray, id="np.asanyarray"),
    pytest.param(np.ascontiguousarray, id="np.ascontiguousarray"),
    pytest.param(lambda x: np.asarray(x, dtype=np.float64), id="np.asarray-dtype"),
    pytest.param(float, id="float"),
    pytest.param(int, id="int"),
    pytest.param(complex, id="complex"),
    pytest.param(operator.index, id="operator.index"),
    pytest.param(lambda x: x.tolist(), id="tolist"),
    pytest.param(lambda x: np.save(io.BytesIO(), x), id="np.save"),
    pytest.param(lambda x: np.savetxt(io.StringIO(), x), id="np.savetxt"),
    pytest.param(lambda x: np.array2string(x), id="np.array2string"),
    pytest.param(lambda x: np.testing.assert_allclose(x, x), id="np.testing"),
    pytest.param(lambda x: np.zeros(3)[x.astype(np.int64)], id="as-numpy-index"),
]


@pytest.mark.parametrize("convert", IMPLICIT)
@pytest.mark.parametrize("shape", [(), (1,), (4, 3)])
def test_implicit_conversion_is_refused_like_cupy(convert, shape):
    x = xp.asarray(np.ones(shape, dtype=np.float32))
    with count_copies() as c:
        with pytest.raises(TypeError, match=r"\.get\(\)"):
            convert(x)
    assert_no_copies(c)


def test_memoryview_is_refused():
    x = xp.asarray(np.arange(4, dtype=np.uint8))
    with pytest.raises(TypeError):
        memoryview(x)
    with pytest.raises(TypeError):
        np.frombuffer(x, dtype=np.uint8)


def test_pil_fromarray_is_refused():
    Image = pytest.importorskip("PIL.Image")
    x = xp.asarray(np.zeros((4, 4), dtype=np.uint8))
    # CuPy arrays have no __array_interface__, so Pillow fails with AttributeError there as here
    with pytest.raises((TypeError, AttributeError)):
        Image.fromarray(x)
    Image.fromarray(x.get())  # the explicit way works


@pytest.mark.parametrize("name", ["__array_interface__", "__array_struct__", "__cuda_array_interface__",
                                  "__dlpack__", "__dlpack_device__", "data", "__dict__"])
def test_no_host_or_device_pointer_exports(name):
    assert not hasattr(xp.zeros(3), name)


MIXES = [
    pytest.param(lambda d, h: d + h, id="dev+np"),
    pytest.param(lambda d, h: h + d, id="np+dev"),
    pytest.param(lambda d, h: d * h, id="dev*np"),
    pytest.param(lambda d, h: h < d, id="np<dev"),
    pytest.param(lambda d, h: d == h, id="dev==np"),
    pytest.param(lambda d, h: h @ d.T, id="np@dev"),
    pytest.param(lambda d, h: d.__iadd__(h), id="dev+=np"),
    pytest.param(lambda d, h: d + h.tolist(), id="dev+list"),
    pytest.param(lambda d, h: np.add(d, h), id="np.add"),
    pytest.param(lambda d, h: np.maximum(h, d), id="np.maximum"),
    pytest.param(lambda d, h: np.concatenate([d, h]), id="np.concatenate"),
    pytest.param(lambda d, h: np.where(d > 0, d, h), id="np.where"),
    pytest.param(lambda d, h: np.add(d, d, out=h), id="np.add-out"),
    pytest.param(lambda d, h: xp.maximum(d, h), id="xp.maximum"),
    pytest.param(lambda d, h: xp.stack([d, h]), id="xp.stack"),
    pytest.param(lambda d, h: xp.sqrt(h), id="xp.sqrt-np"),
    pytest.param(lambda d, h: d.clip(h, None), id="method-arg"),
]


@pytest.mark.parametrize("mix", MIXES)
def test_mixing_with_a_numpy_array_is_refused(mix, pair):
    host, dev = pair
    with count_copies() as c:
        with pytest.raises(TypeError, match="Unsupported type"):
            mix(dev, host.copy())
    assert_no_copies(c)


def test_numpy_scalars_and_python_scalars_mix_freely(pair):
    host, dev = pair
    with count_copies() as c:
        results = [np.float32(2) * dev, dev * np.float32(2), 2 * dev, dev - 1.5, 3 ** (dev > 0)]
    assert_no_copies(c)
    expected = [np.float32(2) * host, host * np.float32(2), 2 * host, host - 1.5, 3 ** (host > 0)]
    for r, e in zip(results, expected):
        assert isinstance(r, DeviceArray)
        np.testing.assert_array_equal(r.get(), e)


# --------------------------------------------------------------------------- agreement with numpy

BINARY = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
          operator.pow, operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]
INTEGER_BINARY = [operator.and_, operator.or_, operator.xor, operator.add, operator.mul, operator.floordiv]


@pytest.mark.parametrize("op", BINARY, ids=lambda f: f.__name__)
def test_binary_operators_agree_with_numpy(op, rng):
    a = rng.uniform(0.5, 2.0, size=(6, 5))
    b = rng.uniform(0.5, 2.0, size=(6, 5))
    da, db = xp.asarray(a), xp.asarray(b)
    with count_copies() as c:
        results = [op(da, db), op(da, 1.25), op(1.25, da), op(da, db[0])]  # array, scalar, reflected, broadcast
    assert_no_copies(c)
    expected = [op(a, b), op(a, 1.25), op(1.25, a), op(a, b[0])]
    for r, e in zip(results, expected):
        assert isinstance(r, DeviceArray)
        np.testing.assert_array_equal(r.get(), e)


@pytest.mark.parametrize("op", INTEGER_BINARY, ids=lambda f: f.__name__)
def test_integer_operators_agree_with_numpy(op, rng):
    a = rng.integers(1, 1000, size=(4, 9), dtype=np.int32)
    b = rng.integers(1, 1000, size=(4, 9), dtype=np.int32)
    np.testing.assert_array_equal(op(xp.asarray(a), xp.asarray(b)).get(), op(a, b))
    np.testing.assert_array_equal(op(xp.asarray(a), 7).get(), op(a, 7))


@pytest.mark.parametrize("iop, op", [(operator.iadd, operator.add), (operator.isub, operator.sub),
                                     (operator.imul, operator.mul), (operator.itruediv, operator.truediv),
                                     (operator.ipow, operator.pow)], ids=lambda f: f.__name__)
def test_in_place_operators_agree_with_numpy_and_keep_the_array(iop, op, rng):
    a = rng.uniform(0.5, 2.0, size=(3, 8))
    b = rng.uniform(0.5, 2.0, size=(3, 8))
    da = xp.asarray(a)
    view = da[1:]
    result = iop(da, xp.asarray(b))
    assert result is da
    np.testing.assert_array_equal(da.get(), op(a, b))
    np.testing.assert_array_equal(view.get(), op(a, b)[1:])  # in place: a view of the array sees the result
    result = iop(da, 2.0)
    np.testing.assert_array_equal(da.get(), op(op(a, b), 2.0))


def test_unary_operators_agree_with_numpy(rng):
    a = rng.normal(size=(4, 4))
    i = rng.integers(-50, 50, size=10)
    da, di = xp.asarray(a), xp.asarray(i)
    np.testing.assert_array_equal((-da).get(), -a)
    np.testing.assert_array_equal((+da).get(), +a)
    np.testing.assert_array_equal(abs(da).get(), abs(a))
    np.testing.assert_array_equal((~di).get(), ~i)
    np.testing.assert_array_equal((da @ da.T).get(), a @ a.T)


REDUCTIONS = ["min", "max", "sum", "mean", "any", "all", "argmax", "argmin", "prod", "std", "var"]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("kwargs", [{}, {"axis": 0}, {"axis": 1}, {"axis": -1, "keepdims": True}])
def test_reductions_agree_with_numpy(name, kwargs, rng):
    a = rng.normal(size=(6, 9))
    if name in ("any", "all"):
        a = a > 0.8
    if name in ("argmax", "argmin") and kwargs.get("keepdims"):
        kwargs = {"axis": -1}
    da = xp.asarray(a)
    with count_copies() as c:
        r = getattr(da, name)(**kwargs)
    assert_no_copies(c)
    expected = getattr(a, name)(**kwargs)
    assert isinstance(r, DeviceArray)  # a full reduction gives a 0-d device array, as CuPy's does
    assert r.shape == np.shape(expected)
    np.testing.assert_allclose(r.get(), expected, rtol=1e-12)


def test_methods_agree_with_numpy(rng):
    a = rng.normal(size=(3, 4, 5))
    da = xp.asarray(a)
    cases = {
        "reshape": ((12, 5), {}), "ravel": ((), {}), "transpose": ((2, 0, 1), {}), "swapaxes": ((0, 2), {}),
        "astype": ((np.float32,), {}), "clip": ((-0.5, 0.5), {}), "round": ((2,), {}), "copy": ((), {}),
        "cumsum": ((), {"axis": 1}), "flatten": ((), {}), "argsort": ((), {"axis": -1}),
    }
    for name, (args, kwargs) in cases.items():
        r = getattr(da, name)(*args, **kwargs)
        assert isinstance(r, DeviceArray), name
        np.testing.assert_array_equal(r.get(), getattr(a, name)(*args, **kwargs), err_msg=name)
    np.testing.assert_array_equal(da[:1].squeeze(0).get(), a[:1].squeeze(0))
    np.testing.assert_array_equal(da.T.get(), a.T)
    np.testing.assert_array_equal(da.view(np.int64).get(), a.view(np.int64))
    lo, hi = xp.asarray(np.float64(-0.1)), xp.asarray(np.float64(0.2))
    np.testing.assert_array_equal(da.clip(lo, hi).get(), a.clip(-0.1, 0.2))  # device bounds are unwrapped
    filled = xp.empty((2, 3), dtype=np.int16)
    assert filled.fill(7) is None
    np.testing.assert_array_equal(filled.get(), np.full((2, 3), 7, np.int16))


def test_numpy_functions_compute_on_device_arrays(rng):
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    da, db = xp.asarray(a), xp.asarray(b)
    with count_copies() as c:
        results = {
            "sqrt": np.sqrt(abs(da)), "maximum": np.maximum(da, db), "concatenate": np.concatenate([da, db]),
            "where": np.where(da > 0, da, db), "reduce": np.add.reduce(da, axis=1), "sum": np.sum(da),
            "xp.exp": xp.exp(da), "xp.stack": xp.stack([da, db]), "xp.linalg.norm": xp.linalg.norm(da, axis=0),
            "xp.add.accumulate": xp.add.accumulate(da, axis=0), "xp.clip": xp.clip(da, -0.2, 0.3),
        }
        i, j = np.nonzero(da > 0.5)
    assert_no_copies(c)
    expected = {
        "sqrt": np.sqrt(abs(a)), "maximum": np.maximum(a, b), "concatenate": np.concatenate([a, b]),
        "where": np.where(a > 0, a, b), "reduce": np.add.reduce(a, axis=1), "sum": np.sum(a),
        "xp.exp": np.exp(a), "xp.stack": np.stack([a, b]), "xp.linalg.norm": np.linalg.norm(a, axis=0),
        "xp.add.accumulate": np.add.accumulate(a, axis=0), "xp.clip": np.clip(a, -0.2, 0.3),
    }
    for name, r in results.items():
        assert isinstance(r, DeviceArray), name
        np.testing.assert_allclose(r.get(), expected[name], rtol=1e-12, err_msg=name)
    ei, ej = np.nonzero(a > 0.5)
    assert isinstance(i, DeviceArray) and isinstance(j, DeviceArray)
    np.testing.assert_array_equal(i.get(), ei)
    np.testing.assert_array_equal(j.get(), ej)


def test_out_arguments_return_the_same_device_array(rng):
    a = rng.normal(size=(3, 3))
    da = xp.asarray(a)
    out = xp.empty_like(da)
    assert np.multiply(da, 2.0, out=out) is out
    assert xp.add(da, da, out=out) is out
    np.testing.assert_array_equal(out.get(), a + a)
    assert da.astype(da.dtype, copy=False) is da
    assert xp.asarray(da) is da


# --------------------------------------------------------------------------- views and indexing

def test_views_share_memory_and_copies_do_not(rng):
    a = rng.normal(size=(4, 6))
    da = xp.asarray(a)
    views = [da[1:3], da[:, ::2], da.T, da.reshape(6, 4), da.ravel(), da[2], da[..., 1], da.transpose(),
             da.view(), da.swapaxes(0, 1), da[None]]
    for v in views:
        assert np.shares_memory(standin.raw(v), standin.raw(da))
        assert np.shares_memory(v, da)  # through __array_function__, on the underlying buffers
    for c in [da.copy(), da.astype(np.float32), xp.array(da), copy.deepcopy(da), da[[0, 2]]]:
        assert not np.shares_memory(standin.raw(c), standin.raw(da))
    # a write through a view (and through a 0-d element view) is seen by the base array
    da[1:3][0, 0] = 100.0
    element = da[3, 5]
    element[...] = -7.0
    expected = a.copy()
    expected[1, 0], expected[3, 5] = 100.0, -7.0
    np.testing.assert_array_equal(da.get(), expected)


def test_upload_is_a_copy_of_the_host_data(rng):
    a = rng.normal(size=(3, 3))
    keep = a.copy()
    da = xp.asarray(a)
    a[:] = 0
    np.testing.assert_array_equal(da.get(), keep)
    got = da.get()
    got[:] = 1
    np.testing.assert_array_equal(da.get(), keep)


def test_indexing_agrees_with_numpy_and_counts_host_index_arrays(rng):
    a = rng.normal(size=(8, 5))
    da = xp.asarray(a)
    mask = a[:, 0] > 0
    idx = np.array([7, 0, 3], dtype=np.int64)
    with count_copies() as c:
        by_device_mask = da[xp.asarray(mask)]
        by_device_index = da[xp.asarray(idx), 1:]
    assert (c.h2d, c.h2d_bytes, c.d2h) == (2, mask.nbytes + idx.nbytes, 0)  # the two explicit uploads only
    with count_copies() as c:
        by_host_index = da[idx]
        by_list = da[[1, 2], [0, 4]]
    assert (c.h2d, c.h2d_bytes, c.d2h) == (1 + 2, idx.nbytes + 2 * np.asarray([1, 2]).nbytes, 0)
    np.testing.assert_array_equal(by_device_mask.get(), a[mask])
    np.testing.assert_array_equal(by_device_index.get(), a[idx, 1:])
    np.testing.assert_array_equal(by_host_index.get(), a[idx])
    np.testing.assert_array_equal(by_list.get(), a[[1, 2], [0, 4]])
    element = da[2, 3]
    assert isinstance(element, DeviceArray) and element.shape == ()
    assert element.item() == a[2, 3]


def test_setitem_counts_host_values_only(rng):
    a = rng.normal(size=(6, 4)).astype(np.float32)
    da = xp.asarray(a)
    expected = a.copy()
    row = rng.normal(size=4).astype(np.float32)
    d_row = xp.asarray(row)
    with count_copies() as c:
        da[0] = d_row                # device value: a device copy
        da[1] = 2.5                  # scalar: a kernel argument, no copy
        da[2, 1:] = np.float32(4.0)  # numpy scalar: no copy
    assert_no_copies(c)
    expected[0], expected[1], expected[2, 1:] = row, 2.5, 4.0
    host_block = rng.normal(size=(2, 4)).astype(np.float32)
    with count_copies() as c:
        da[3:5] = host_block         # numpy array: uploaded
        da[5] = [1.0, 2.0, 3.0, 4.0]  # list: uploaded
    assert (c.h2d, c.h2d_bytes, c.d2h) == (2, host_block.nbytes + np.asarray([1.0, 2.0, 3.0, 4.0]).nbytes, 0)
    expected[3:5], expected[5] = host_block, [1.0, 2.0, 3.0, 4.0]
    with count_copies() as c:
        da[xp.asarray(np.array([0, 5]))] = 0.0
    assert c.h2d == 1  # the explicit upload of the index, nothing else
    expected[[0, 5]] = 0.0
    np.testing.assert_array_equal(da.get(), expected)


# --------------------------------------------------------------------------- the rest of the array API

def test_metadata_matches_numpy(rng):
    a = np.asfortranarray(rng.normal(size=(3, 5)).astype(np.float32))
    da = xp.asarray(a)
    with count_copies() as c:
        assert (da.shape, da.dtype, da.ndim, da.size, da.nbytes, da.itemsize, da.strides) == (
            a.shape, a.dtype, a.ndim, a.size, a.nbytes, a.itemsize, a.strides)
        assert (da.flags.c_contiguous, da.flags.f_contiguous, da.flags.writeable) == (False, True, True)
        assert da.flags["F_CONTIGUOUS"] and xp.ascontiguousarray(da).flags.c_contiguous
        assert len(da) == 3
        rows = list(da)
        text = repr(da) + str(da)
    assert_no_copies(c)
    assert "stand-in" in text and "(3, 5)" in text and "float32" in text
    assert all(isinstance(r, DeviceArray) for r in rows)
    np.testing.assert_array_equal(np.stack([r.get() for r in rows]), a)
    with pytest.raises(TypeError):
        len(xp.asarray(np.float32(1)))


def test_bool_needs_one_element_and_counts_a_download():
    one = xp.asarray(np.array([3], dtype=np.int16))
    with count_copies() as c:
        assert bool(one)
        assert not bool(one - 3)
        if (one > 2).any():
            pass
    assert (c.d2h, c.d2h_bytes, c.h2d) == (3, 2 + 2 + 1, 0)
    with pytest.raises(ValueError):
        bool(xp.zeros(2))
    with pytest.raises(ValueError):
        bool(xp.zeros(0))


def test_get_item_and_asnumpy(rng):
    a = rng.integers(0, 100, size=(2, 3)).astype(np.int32)
    da = xp.asarray(a)
    out = np.empty_like(a)
    with count_copies() as c:
        assert da.get(out=out) is out
        got = xp.asnumpy(da)
        value = da[1, 2].item()
        same = xp.asnumpy(a)
    assert (c.d2h, c.d2h_bytes, c.h2d) == (3, 2 * a.nbytes + a.itemsize, 0)
    np.testing.assert_array_equal(out, a)
    np.testing.assert_array_equal(got, a)
    assert type(got) is np.ndarray and type(value) is int and value == a[1, 2]
    assert same is a
    with pytest.raises(ValueError):
        da.item()
    with pytest.raises(ValueError):
        da.get(out=np.empty((3, 2), np.int32))


def test_xp_namespace(rng):
    a = rng.normal(size=(2, 3))
    with count_copies() as c:
        made = [xp.empty((2, 3)), xp.zeros((2, 3), dtype=xp.float32), xp.ones(4), xp.full((2, 2), 5.0),
                xp.arange(6), xp.zeros_like(a), xp.full_like(a, 3.0), xp.ones_like(a), xp.linspace(0, 1, 5),
                xp.empty_like(a)]
    assert_no_copies(c)  # created on the device; *_like reads only the prototype's shape and dtype
    assert all(isinstance(m, DeviceArray) for m in made)
    np.testing.assert_array_equal(made[1].get(), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(made[4].get(), np.arange(6))
    np.testing.assert_array_equal(made[6].get(), np.full_like(a, 3.0))
    assert xp.ndarray is DeviceArray and xp.float32 is np.float32 and xp.pi == np.pi and xp.newaxis is None
    assert xp.dtype is np.dtype
    da = xp.asarray(a)
    assert xp.get_array_module(a, 1.0) is np and xp.get_array_module(a, da) is xp
    with count_copies() as c:
        cast = xp.asarray(da, dtype=np.float32)
        assert xp.array(da, copy=False) is da
        assert xp.ascontiguousarray(da) is da
        dup = xp.array(da)
    assert_no_copies(c)
    assert cast.dtype == np.float32 and dup is not da
    np.testing.assert_array_equal(cast.get(), a.astype(np.float32))
    with pytest.raises(TypeError):
        xp.asarray(np.array(["text"]))  # CuPy has no string dtypes
    with pytest.raises(AttributeError):
        xp.no_such_function


def test_pickle_counts_and_deepcopy_does_not(rng):
    a = rng.normal(size=(4, 4))
    da = xp.asarray(a)
    with count_copies() as c:
        back = pickle.loads(pickle.dumps(da))
    assert (c.d2h, c.h2d, c.d2h_bytes, c.h2d_bytes) == (1, 1, a.nbytes, a.nbytes)
    np.testing.assert_array_equal(back.get(), a)
    with count_copies() as c:
        dup = copy.deepcopy(da)
        shallow = copy.copy(da)
    assert_no_copies(c)
    np.testing.assert_array_equal(dup.get(), a)
    np.testing.assert_array_equal(shallow.get(), a)


# --------------------------------------------------------------------------- copy accounting

def test_copy_counter_counts_a_scripted_sequence_exactly(rng):
    uploads = [rng.normal(size=(16, 16)).astype(np.float32), rng.integers(0, 9, size=37).astype(np.int16),
               [[1.0, 2.0], [3.0, 4.0]]]
    standin.reset_copies()
    with count_copies() as c:
        arrays = [xp.asarray(u) for u in uploads]              # 3 uploads
        total = (arrays[0] * 2 + 1).sum()                       # device-only work
        scaled = arrays[1].astype(np.float64) / 3               # device-only work
        _ = repr(arrays[0]), standin.raw(arrays[2]), arrays[0].shape, standin.is_device_array(scaled)
        first = scaled.get()                                    # download 1
        second = xp.asnumpy(arrays[2])                          # download 2
        value = total.item()                                    # download 3 (one float32)
    expected_h2d_bytes = sum(np.asarray(u).nbytes for u in uploads)
    expected_d2h_bytes = scaled.nbytes + np.asarray(uploads[2]).nbytes + np.dtype(np.float32).itemsize
    assert c == standin.CopyCounts(h2d=3, d2h=3, h2d_bytes=expected_h2d_bytes, d2h_bytes=expected_d2h_bytes)
    assert standin.copies == c  # the running totals saw the same copies since the reset
    np.testing.assert_allclose(first, uploads[1] / 3)
    np.testing.assert_array_equal(second, uploads[2])
    assert value == pytest.approx(float((uploads[0] * 2 + 1).sum()), rel=1e-5)
    standin.reset_copies()
    assert standin.copies == standin.CopyCounts()


def test_counters_nest_and_survive_a_reset():
    a = np.zeros(10, dtype=np.float64)
    with count_copies() as outer:
        standin.to_device(a)
        with count_copies() as inner:
            x = standin.to_device(a)
            standin.reset_copies()
            x.get()
        standin.to_device(a)
    assert (inner.h2d, inner.d2h) == (1, 1)
    assert (outer.h2d, outer.d2h, outer.h2d_bytes, outer.d2h_bytes) == (3, 1, 3 * a.nbytes, a.nbytes)
    assert (standin.copies.h2d, standin.copies.d2h) == (1, 1)  # only what happened after the reset
    assert standin.to_device(x) is x  # already on the device: no copy


def test_copy_counter_is_thread_safe():
    n_threads, uploads_each, gets_each = 8, 300, 200
    sizes = [(t + 1) * 8 for t in range(n_threads)]  # bytes of one float64 array per thread
    barrier = threading.Barrier(n_threads)
    errors = []

    def work(t):
        try:
            host = np.ones(sizes[t] // 8, dtype=np.float64)
            barrier.wait()
            arrays = [xp.asarray(host) for _ in range(uploads_each)]
            for i in range(gets_each):
                arrays[i].get()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that an unlocked read-modify-write would lose counts
    try:
        with count_copies() as c:
            threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert (c.h2d, c.d2h) == (n_threads * uploads_each, n_threads * gets_each)
    assert c.h2d_bytes == uploads_each * sum(sizes)
    assert c.d2h_bytes == gets_each * sum(sizes)


def test_raw_is_for_launchers_only_and_not_counted():
    a = np.arange(5.0)
    da = xp.asarray(a)
    with count_copies() as c:
        buf = standin.raw(da)
        buf[0] = 42.0  # a kernel writing through the "device pointer"
    assert_no_copies(c)
    assert da[0].item() == 42.0
    with pytest.raises(TypeError):
        standin.raw(a)
    assert standin.is_device_array(da) and not standin.is_device_array(a)
