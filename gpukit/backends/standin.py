"""A strict CuPy-like device array for machines without a GPU.

CI has no GPU, yet every path a GPU user runs (ops, render, writers, batch,
CLI) has to run there on arrays that behave like CuPy's where it matters: an
accidental device-to-host conversion must fail in CI, not on a user's GPU.
:class:`DeviceArray` is that stand-in. Its data live in host memory (a numpy
array underneath), but it refuses every implicit conversion to the host the
way CuPy does: ``cupy.ndarray.__array__`` raises ``TypeError: Implicit
conversion to a NumPy array is not allowed. Please use `.get()` to construct a
NumPy array explicitly.``, so ``np.asarray(x)``, ``np.save`` and
``PIL.Image.fromarray`` fail on a CuPy array. The kernels that run on these
arrays are the project's CUDA C++ sources compiled for the CPU; their launcher
reaches the numpy array through :func:`raw`, which models passing a device
pointer and is the only public way in.

CuPy behaviours copied:

- ``np.asarray``/``np.array``/``np.ascontiguousarray`` raise ``TypeError``
  naming ``.get()``; there is no ``__array_interface__``, ``__array_struct__``,
  buffer protocol, ``__cuda_array_interface__`` or DLPack (the data are not on
  a device, so pretending to export a device pointer would be a lie).
- ``.get()``, ``xp.asnumpy`` and ``.item()`` are the explicit ways to the host;
  ``xp.asarray`` of host data is the explicit way to the device.
- Operators and numpy functions (through ``__array_ufunc__`` and
  ``__array_function__``) compute on device arrays and Python or numpy scalars
  and return device arrays (reductions give 0-d arrays, as CuPy's do); a numpy
  ndarray mixed in raises ``TypeError: Unsupported type <class
  'numpy.ndarray'>``.
- Indexing with numpy or list index arrays and assigning numpy arrays into a
  device array are accepted, as CuPy accepts them, but counted as uploads.
- ``bool(x)`` works for a size-1 array (counted as a download, the sync CuPy
  does), and ``pickle`` works (counted as a download and an upload).

Stricter than CuPy, on purpose (each is an implicit host copy in CuPy):
``float``/``int``/``complex``/``operator.index`` of a size-1 array,
``tolist()``, ``str()`` showing values, and numpy's host-only functions
(``np.save``, ``np.savetxt``, ``np.array2string``, ...) all raise; ``repr`` shows
shape and dtype only. Use ``.item()`` or ``.get()`` instead.

Every upload and download is counted (:data:`copies`, :func:`count_copies`), so
tests can assert that an op on a resident volume moves no data at all.
Device-to-device work (ops, casts, copies, views) is never counted.
"""

from __future__ import annotations

import contextlib
import operator
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CopyCounts", "DeviceArray", "Flags", "copies", "count_copies", "is_device_array",
    "raw", "reset_copies", "to_device", "xp",
]

IMPLICIT_CONVERSION = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)
_UNSUPPORTED_DTYPE_KINDS = "OUSVMm"  # object, strings, void/structured, datetimes: CuPy has none of them


# --------------------------------------------------------------------------- copy accounting

@dataclass
class CopyCounts:
    """Numbers of host-to-device (``h2d``) and device-to-host (``d2h``) copies and their bytes."""

    h2d: int = 0
    d2h: int = 0
    h2d_bytes: int = 0
    d2h_bytes: int = 0


#: Running totals since import or the last :func:`reset_copies`, for all threads together.
copies = CopyCounts()
_lock = threading.Lock()
_open_counters: list[CopyCounts] = []


def _record(direction: str, nbytes: int) -> None:
    """Count one copy (``direction`` is ``"h2d"`` or ``"d2h"``) in the totals and every open counter."""
    with _lock:
        for c in (copies, *_open_counters):
            setattr(c, direction, getattr(c, direction) + 1)
            setattr(c, direction + "_bytes", getattr(c, direction + "_bytes") + int(nbytes))


def reset_copies() -> None:
    """Set the running totals in :data:`copies` back to zero (open :func:`count_copies` blocks are unaffected)."""
    with _lock:
        copies.h2d = copies.d2h = copies.h2d_bytes = copies.d2h_bytes = 0


@contextlib.contextmanager
def count_copies() -> Iterator[CopyCounts]:
    """Count the copies made inside the ``with`` block (by every thread).

    Yields
    ------
    CopyCounts
        Filled in as copies happen; final when the block ends. Blocks may nest.
    """
    counter = CopyCounts()
    with _lock:
        _open_counters.append(counter)
    try:
        yield counter
    finally:
        with _lock:
            _open_counters[:] = [c for c in _open_counters if c is not counter]


# --------------------------------------------------------------------------- unwrapping and wrapping

def _refuse(value: Any) -> TypeError:
    return TypeError(
        f"Unsupported type {type(value)}: a host array mixed with a device array "
        "(upload it explicitly with xp.asarray, as CuPy requires)"
    )


def _unwrap(value: Any, originals: dict[int, DeviceArray]) -> Any:
    """``value`` with each DeviceArray replaced by its numpy array (noted in ``originals``); numpy arrays refused."""
    if isinstance(value, DeviceArray):
        originals[id(value._host)] = value
        return value._host
    if isinstance(value, np.ndarray):
        raise _refuse(value)
    if type(value) in (list, tuple):
        return type(value)(_unwrap(v, originals) for v in value)
    return value


def _wrap(result: Any, originals: dict[int, DeviceArray]) -> Any:
    """``result`` with numpy arrays and numpy scalars made DeviceArrays (an input array comes back as itself)."""
    if isinstance(result, np.ndarray):
        original = originals.get(id(result))
        return original if original is not None and original._host is result else DeviceArray._from_host(result)
    if isinstance(result, np.generic):
        return DeviceArray._from_host(np.asarray(result))
    if type(result) in (list, tuple):
        return type(result)(_wrap(r, originals) for r in result)
    return result


#: numpy functions whose purpose is to read the data on the host; refused even though numpy dispatches them.
_HOST_ONLY = (np.save, np.savez, np.savez_compressed, np.savetxt, np.array2string, np.array_repr, np.array_str)


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """Run a numpy callable on unwrapped device arrays and wrap its array results."""
    if any(fn is f for f in _HOST_ONLY):
        raise TypeError(f"numpy.{fn.__name__} reads the data on the host. {IMPLICIT_CONVERSION}")
    originals: dict[int, DeviceArray] = {}
    args = _unwrap(args, originals)
    kwargs = {k: _unwrap(v, originals) for k, v in kwargs.items()}
    return _wrap(fn(*args, **kwargs), originals)


def _operand(value: Any) -> Any:
    """The numpy-side value of an operator's other operand, or NotImplemented for a type Python should try elsewhere."""
    if isinstance(value, DeviceArray):
        return value._host
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        raise _refuse(value)
    return NotImplemented


def _index(key: Any) -> Any:
    """An index with DeviceArrays unwrapped; numpy and list index arrays are uploads, as in CuPy."""
    def part(k: Any) -> Any:
        if isinstance(k, DeviceArray):
            return k._host
        if isinstance(k, (np.ndarray, list)):
            k = np.asarray(k)
            _record("h2d", k.nbytes)
        return k
    return tuple(part(k) for k in key) if isinstance(key, tuple) else part(key)


# --------------------------------------------------------------------------- the array

@dataclass(frozen=True)
class Flags:
    """Memory layout flags, as ``cupy.ndarray.flags`` (also readable as ``flags["C_CONTIGUOUS"]``)."""

    c_contiguous: bool
    f_contiguous: bool
    owndata: bool
    writeable: bool

    def __getitem__(self, name: str) -> bool:
        return getattr(self, name.lower())


def _binary(fn: Callable[[Any, Any], Any], reflected: bool = False) -> Callable[[DeviceArray, Any], Any]:
    def method(self: DeviceArray, other: Any) -> Any:
        value = _operand(other)
        if value is NotImplemented:
            return NotImplemented
        return _wrap(fn(value, self._host) if reflected else fn(self._host, value), {})
    return method


def _inplace(fn: Callable[[Any, Any], Any]) -> Callable[[DeviceArray, Any], Any]:
    def method(self: DeviceArray, other: Any) -> Any:
        value = _operand(other)
        if value is NotImplemented:
            return NotImplemented
        self._host = fn(self._host, value)  # numpy's in-place operators return the same array
        return self
    return method


def _unary(fn: Callable[[Any], Any]) -> Callable[[DeviceArray], DeviceArray]:
    return lambda self: _wrap(fn(self._host), {})


class DeviceArray:
    """A pretend device array: numpy data in host memory behind CuPy's rules.

    Parameters
    ----------
    shape, dtype, order
        As ``cupy.ndarray(shape, dtype, order=...)``: uninitialised memory. Arrays from data come from
        :func:`to_device` or ``xp.asarray`` (counted uploads).

    Notes
    -----
    The numpy array is ``_host``; only kernel launchers may reach it, through :func:`raw`.
    """

    __slots__ = ("_host",)
    __hash__ = None  # type: ignore[assignment]  # == is elementwise

    def __init__(self, shape: int | tuple[int, ...], dtype: Any = float, order: str = "C") -> None:
        self._host = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _from_host(cls, host: np.ndarray) -> DeviceArray:
        obj = object.__new__(cls)
        obj._host = host
        return obj

    # ---- refused implicit conversions
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(IMPLICIT_CONVERSION)

    def __buffer__(self, flags: int) -> memoryview:  # Python >= 3.12; older versions refuse memoryview(x) anyway
        raise TypeError(IMPLICIT_CONVERSION)

    def _refuse_scalar(self, *args: Any) -> Any:
        raise TypeError(f"{IMPLICIT_CONVERSION} For one value use `.item()`.")

    __float__ = __int__ = __complex__ = __index__ = _refuse_scalar

    def tolist(self) -> list:
        """Refused (CuPy allows it, as an implicit download): use ``x.get().tolist()``."""
        raise TypeError(f"{IMPLICIT_CONVERSION} Use `.get().tolist()`.")

    def __bool__(self) -> bool:
        """The truth of a size-1 array, counted as a download (CuPy synchronises here too)."""
        if self._host.size != 1:
            raise ValueError("The truth value of an array with other than one element is ambiguous. "
                             "Use a.any() or a.all()")
        _record("d2h", self._host.itemsize)
        return bool(self._host.reshape(-1)[0])

    # ---- explicit transfers
    def get(self, stream: Any = None, order: str = "C", out: np.ndarray | None = None,
            blocking: bool = True) -> np.ndarray:
        """A numpy copy of the data (one counted download), or the data copied into ``out``."""
        _record("d2h", self._host.nbytes)
        if out is None:
            return np.array(self._host, order=order, copy=True)
        if not isinstance(out, np.ndarray) or out.shape != self.shape or out.dtype != self.dtype:
            raise ValueError("out must be a numpy array of the same shape and dtype")
        np.copyto(out, self._host)
        return out

    def item(self) -> Any:
        """The one element as a Python scalar (one counted download)."""
        if self._host.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        _record("d2h", self._host.itemsize)
        return self._host.item()

    def __reduce__(self) -> tuple:
        """Pickling downloads the data and unpickling uploads it again, both counted (CuPy pickles via the host)."""
        return to_device, (self.get(),)

    def __copy__(self) -> DeviceArray:
        return DeviceArray._from_host(self._host.copy())

    def __deepcopy__(self, memo: dict) -> DeviceArray:
        return self.__copy__()

    # ---- metadata
    shape = property(lambda self: self._host.shape, doc="The shape.")
    dtype = property(lambda self: self._host.dtype, doc="The numpy dtype.")
    ndim = property(lambda self: self._host.ndim, doc="The number of dimensions.")
    size = property(lambda self: self._host.size, doc="The number of elements.")
    nbytes = property(lambda self: self._host.nbytes, doc="The number of bytes of the elements.")
    itemsize = property(lambda self: self._host.itemsize, doc="The number of bytes of one element.")
    strides = property(lambda self: self._host.strides, doc="The strides in bytes.")
    T = property(lambda self: DeviceArray._from_host(self._host.T), doc="The transposed view.")

    @property
    def flags(self) -> Flags:
        """Layout flags (``c_contiguous``, ``f_contiguous``, ``owndata``, ``writeable``)."""
        f = self._host.flags
        return Flags(f.c_contiguous, f.f_contiguous, f.owndata, f.writeable)

    def __len__(self) -> int:
        if self._host.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._host)

    def __iter__(self) -> Iterator[DeviceArray]:
        if self._host.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._host)))

    def __repr__(self) -> str:
        return (f"DeviceArray(shape={self.shape}, dtype={self.dtype}) "
                "[host-memory stand-in for a CuPy array; values via .get()]")

    __str__ = __repr__

    # ---- indexing: views stay views; an index that comes to rest on one element gives a 0-d view, as in CuPy
    def __getitem__(self, key: Any) -> DeviceArray:
        key = _index(key)
        result = self._host[key]
        if not isinstance(result, np.ndarray):
            parts = key if isinstance(key, tuple) else (key,)
            result = self._host[(*parts, Ellipsis)]
        return DeviceArray._from_host(result)

    def __setitem__(self, key: Any, value: Any) -> None:
        key = _index(key)
        if isinstance(value, DeviceArray):
            value = value._host
        elif isinstance(value, (np.ndarray, list, tuple)):
            value = np.asarray(value)
            _record("h2d", value.nbytes)
        self._host[key] = value

    # ---- numpy protocols: compute on the numpy arrays, refuse numpy arrays mixed in
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _call(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func: Callable[..., Any], types: tuple, args: tuple, kwargs: dict) -> Any:
        if not all(issubclass(t, (DeviceArray, np.ndarray)) for t in types):
            return NotImplemented
        return _call(func, args, kwargs)

    # ---- operators
    __add__, __radd__, __iadd__ = _binary(operator.add), _binary(operator.add, True), _inplace(operator.iadd)
    __sub__, __rsub__, __isub__ = _binary(operator.sub), _binary(operator.sub, True), _inplace(operator.isub)
    __mul__, __rmul__, __imul__ = _binary(operator.mul), _binary(operator.mul, True), _inplace(operator.imul)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __itruediv__ = _inplace(operator.itruediv)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv), _binary(operator.floordiv, True)
    __ifloordiv__ = _inplace(operator.ifloordiv)
    __mod__, __rmod__, __imod__ = _binary(operator.mod), _binary(operator.mod, True), _inplace(operator.imod)
    __pow__, __rpow__, __ipow__ = _binary(operator.pow), _binary(operator.pow, True), _inplace(operator.ipow)
    __and__, __rand__, __iand__ = _binary(operator.and_), _binary(operator.and_, True), _inplace(operator.iand)
    __or__, __ror__, __ior__ = _binary(operator.or_), _binary(operator.or_, True), _inplace(operator.ior)
    __xor__, __rxor__, __ixor__ = _binary(operator.xor), _binary(operator.xor, True), _inplace(operator.ixor)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)  # type: ignore[assignment]
    __neg__, __pos__ = _unary(operator.neg), _unary(operator.pos)
    __abs__, __invert__ = _unary(operator.abs), _unary(operator.invert)


def _method(name: str) -> Callable[..., Any]:
    def method(self: DeviceArray, *args: Any, **kwargs: Any) -> Any:
        result = _call(getattr(self._host, name), args, kwargs)
        # numpy may hand back the array itself (astype(copy=False)): then so do we
        return self if isinstance(result, DeviceArray) and result._host is self._host else result
    method.__name__ = name
    method.__doc__ = f"As ``numpy.ndarray.{name}``, on the device (array results are DeviceArrays)."
    return method


for _name in ("reshape", "astype", "copy", "ravel", "flatten", "transpose", "swapaxes", "squeeze", "fill",
              "view", "clip", "min", "max", "sum", "prod", "mean", "std", "var", "any", "all", "argmax",
              "argmin", "round", "cumsum", "nonzero", "dot", "take", "repeat", "sort", "argsort"):
    setattr(DeviceArray, _name, _method(_name))
del _name


# --------------------------------------------------------------------------- helpers

def is_device_array(x: Any) -> bool:
    """Whether ``x`` is a stand-in device array."""
    return isinstance(x, DeviceArray)


def raw(x: DeviceArray) -> np.ndarray:
    """The numpy array behind ``x``, not a copy and not counted: the stand-in for a device pointer.

    Only kernel launchers may call this (they pass it where a CUDA launch passes ``x.data.ptr``);
    anything else that needs the values must use ``x.get()``.
    """
    if not isinstance(x, DeviceArray):
        raise TypeError(f"raw() takes a DeviceArray, not {type(x)}")
    return x._host


def to_device(a: Any, dtype: Any = None) -> DeviceArray:
    """Upload host data (one counted copy); a DeviceArray comes back as is (or cast on the device)."""
    return _asarray(a, dtype)


def _upload(a: Any, dtype: Any = None, order: str = "K", ndmin: int = 0) -> DeviceArray:
    host = np.array(a, dtype=dtype, order=order, copy=True, ndmin=ndmin)
    if host.dtype.kind in _UNSUPPORTED_DTYPE_KINDS:
        raise TypeError(f"Unsupported dtype {host.dtype}")
    _record("h2d", host.nbytes)
    return DeviceArray._from_host(host)


def _same_or_new(a: DeviceArray, host: np.ndarray) -> DeviceArray:
    return a if host is a._host else DeviceArray._from_host(host)


def _asarray(a: Any, dtype: Any = None, order: str | None = None) -> DeviceArray:
    """As ``cupy.asarray``: a DeviceArray stays (or is cast on the device); anything else is uploaded (counted)."""
    if isinstance(a, DeviceArray):
        return _same_or_new(a, np.asarray(a._host, dtype=dtype, order=order))
    return _upload(a, dtype, order or "K")


def _array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", ndmin: int = 0) -> DeviceArray:
    """As ``cupy.array``: a device copy of a DeviceArray (unless ``copy=False`` allows none); else an upload."""
    if isinstance(obj, DeviceArray):
        return _same_or_new(obj, np.array(obj._host, dtype=dtype, copy=copy or None, order=order, ndmin=ndmin))
    return _upload(obj, dtype, order, ndmin)


def _ascontiguousarray(a: Any, dtype: Any = None) -> DeviceArray:
    """As ``cupy.ascontiguousarray``: C-contiguous on the device; host data are uploaded (counted)."""
    if isinstance(a, DeviceArray):
        return _same_or_new(a, np.ascontiguousarray(a._host, dtype=dtype))
    return _upload(a, dtype, "C", 0)


def _asnumpy(a: Any, order: str = "C", out: np.ndarray | None = None) -> np.ndarray:
    """As ``cupy.asnumpy``: a DeviceArray is downloaded (counted); a numpy array comes back as is."""
    if isinstance(a, DeviceArray):
        return a.get(order=order, out=out)
    return a if isinstance(a, np.ndarray) else np.asarray(a, order=order)


def _like(fn: Callable[..., np.ndarray]) -> Callable[..., DeviceArray]:
    """``empty_like`` and friends: read only the shape and dtype of ``a``, so a numpy ``a`` is fine (as in CuPy)."""
    def make(a: Any, *args: Any, **kwargs: Any) -> DeviceArray:
        originals: dict[int, DeviceArray] = {}
        prototype = a._host if isinstance(a, DeviceArray) else a
        return DeviceArray._from_host(fn(prototype, *_unwrap(args, originals), **kwargs))
    make.__name__ = fn.__name__
    make.__doc__ = f"As ``cupy.{fn.__name__}``: a new device array."
    return make


def _get_array_module(*arrays: Any) -> Any:
    """As ``cupy.get_array_module``: :data:`xp` if any argument is a DeviceArray, else numpy."""
    return xp if any(isinstance(a, DeviceArray) for a in arrays) else np


class _DeviceFunction:
    """A numpy callable (function or ufunc) under the stand-in's rules; ufunc methods such as ``reduce`` too."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn
        self.__name__ = getattr(fn, "__name__", repr(fn))
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._fn, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_fn":
            raise AttributeError(name)
        attr = getattr(self._fn, name)
        return _DeviceFunction(attr) if callable(attr) and not isinstance(attr, type) else attr

    def __repr__(self) -> str:
        return f"<stand-in device version of {self._fn!r}>"


class _Namespace:
    """A ``cupy``-like module: the explicit functions above, then any numpy name under the same rules.

    Classes and constants (``float32``, ``dtype``, ``pi``, ``newaxis``) are numpy's own; submodules
    (``linalg``, ``fft``, ``random``) are namespaces in turn; other callables become :class:`_DeviceFunction`.
    """

    def __init__(self, module: types.ModuleType, name: str) -> None:
        self._module = module
        self.__name__ = name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_module":
            raise AttributeError(name)
        obj = getattr(self._module, name)
        if isinstance(obj, types.ModuleType):
            return _Namespace(obj, f"{self.__name__}.{name}")
        if isinstance(obj, type) or not callable(obj):
            return obj
        return _DeviceFunction(obj)

    def __repr__(self) -> str:
        return f"<stand-in array namespace {self.__name__} over {self._module.__name__}>"


#: The array namespace, used like ``cupy`` (``xp.asarray``, ``xp.asnumpy``, ``xp.zeros``, ``xp.sqrt``, ...).
xp = _Namespace(np, "gpukit.backends.standin.xp")
xp.ndarray = DeviceArray
xp.asarray = _asarray
xp.array = _array
xp.ascontiguousarray = _ascontiguousarray
xp.asnumpy = _asnumpy
xp.get_array_module = _get_array_module
xp.empty_like, xp.zeros_like = _like(np.empty_like), _like(np.zeros_like)
xp.ones_like, xp.full_like = _like(np.ones_like), _like(np.full_like)
