"""nvJPEG2000 through ctypes: parse JPEG 2000 codestreams, decode them on the GPU into a device volume.

The library (``libnvjpeg2k``) comes from the ``nvidia-nvjpeg2k-cu12`` wheel
(``pip install 'gpukit[cuda12]'``); it links the CUDA runtime statically, so
loading it, creating a handle and parsing codestreams need no device. Decoding
does (``nvjpeg2kDecodeStateCreate`` fails without one).

Layers, bottom up:

* :func:`library`: the loaded library with argument types declared from
  ``nvjpeg2k.h`` (0.11); a missing library is a
  :class:`~gpukit.errors.MissingDecoderError` naming the package;
* :class:`Handle`, :class:`CodeStream`: ``nvjpeg2kCreateSimple`` /
  ``nvjpeg2kDestroy``, ``nvjpeg2kStreamCreate`` / ``nvjpeg2kStreamParse`` /
  ``nvjpeg2kStreamGetImageInfo`` / ``nvjpeg2kStreamGetImageComponentInfo`` /
  ``nvjpeg2kStreamDestroy``; :func:`parse` returns a :class:`J2KInfo`;
* :func:`route`: whether a frame goes to the GPU or to the CPU decoders
  (pydicom's plugins), and why; the CPU stays the fallback for everything
  the GPU path does not take;
* :class:`Decoder`: ``nvjpeg2kDecodeStateCreate`` / ``nvjpeg2kDecodeParamsCreate``
  and ``nvjpeg2kDecodeImage`` into one slice of a device array;
  :func:`decode_series` runs a series' frames through it (or the CPU), each
  written straight into its slice of a device volume ``(nz, ny, nx)``.

The decode layer has not run on a GPU in this project's CI (no device there):
it is exercised only by the ``gpu``-marked tests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DecodeError, MissingDecoderError

PACKAGE = "nvidia-nvjpeg2k-cu12"

#: JPEG 2000 transfer syntaxes (lossless, lossy; HTJ2K lossless, lossless RPCL, lossy)
JPEG2000_SYNTAXES = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                     "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")

#: frames with fewer pixels than this decode on the CPU (the GPU's fixed cost per frame outweighs its speed)
GPU_MIN_PIXELS = 256 * 256

# -- the C interface (nvjpeg2k.h) -------------------------------------------------------------------------------------
STATUS = {0: "SUCCESS", 1: "NOT_INITIALIZED", 2: "INVALID_PARAMETER", 3: "BAD_JPEG", 4: "JPEG_NOT_SUPPORTED",
          5: "ALLOCATOR_FAILURE", 6: "EXECUTION_FAILED", 7: "ARCH_MISMATCH", 8: "INTERNAL_ERROR",
          9: "IMPLEMENTATION_NOT_SUPPORTED"}
NVJPEG2K_UINT8, NVJPEG2K_UINT16, NVJPEG2K_INT16 = 0, 1, 2
_PIXEL_DTYPES = {NVJPEG2K_UINT8: np.dtype(np.uint8), NVJPEG2K_UINT16: np.dtype(np.uint16),
                 NVJPEG2K_INT16: np.dtype(np.int16)}


class _ImageInfo(ctypes.Structure):
    _fields_ = [("image_width", ctypes.c_uint32), ("image_height", ctypes.c_uint32),
                ("tile_width", ctypes.c_uint32), ("tile_height", ctypes.c_uint32),
                ("num_tiles_x", ctypes.c_uint32), ("num_tiles_y", ctypes.c_uint32),
                ("num_components", ctypes.c_uint32)]


class _ComponentInfo(ctypes.Structure):
    _fields_ = [("component_width", ctypes.c_uint32), ("component_height", ctypes.c_uint32),
                ("precision", ctypes.c_uint8), ("sgn", ctypes.c_uint8)]


class _Image(ctypes.Structure):
    _fields_ = [("pixel_data", ctypes.POINTER(ctypes.c_void_p)), ("pitch_in_bytes", ctypes.POINTER(ctypes.c_size_t)),
                ("pixel_type", ctypes.c_int), ("num_components", ctypes.c_uint32)]


_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_SIGNATURES = {
    "nvjpeg2kGetProperty": [ctypes.c_int, ctypes.POINTER(ctypes.c_int)],
    "nvjpeg2kCreateSimple": [_PP],
    "nvjpeg2kDestroy": [_P],
    "nvjpeg2kStreamCreate": [_PP],
    "nvjpeg2kStreamDestroy": [_P],
    "nvjpeg2kStreamParse": [_P, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, _P],
    "nvjpeg2kStreamGetImageInfo": [_P, ctypes.POINTER(_ImageInfo)],
    "nvjpeg2kStreamGetImageComponentInfo": [_P, ctypes.POINTER(_ComponentInfo), ctypes.c_uint32],
    "nvjpeg2kDecodeStateCreate": [_P, _PP],
    "nvjpeg2kDecodeStateDestroy": [_P],
    "nvjpeg2kDecodeParamsCreate": [_PP],
    "nvjpeg2kDecodeParamsDestroy": [_P],
    "nvjpeg2kDecode": [_P, _P, _P, ctypes.POINTER(_Image), _P],
    "nvjpeg2kDecodeImage": [_P, _P, _P, _P, ctypes.POINTER(_Image), _P],
}


class Nvjpeg2kError(DecodeError):
    """An nvJPEG2000 call returned an error status (``.status``, ``.function``)."""

    def __init__(self, function: str, status: int, path=None):
        self.function = function
        self.status = int(status)
        super().__init__(f"{function} failed: NVJPEG2K_STATUS_{STATUS.get(int(status), status)}", path)


def _check(function: str, status: int, path=None) -> None:
    if status != 0:
        raise Nvjpeg2kError(function, status, path)


def library_candidates() -> list[str]:
    """Where the library is looked for, in order: the ``nvidia-nvjpeg2k-cu12`` wheel, then the system loader."""
    names = ["nvjpeg2k_0.dll"] if sys.platform == "win32" else ["libnvjpeg2k.so.0", "libnvjpeg2k.so"]
    out = []
    try:
        spec = importlib.util.find_spec("nvidia.nvjpeg2k")
    except (ImportError, ValueError):
        spec = None
    for base in (spec.submodule_search_locations or []) if spec is not None else []:
        for sub in ("lib", "bin"):
            out += [str(Path(base, sub, n)) for n in names if Path(base, sub, n).exists()]
    found = ctypes.util.find_library("nvjpeg2k")
    out += [found] if found else []
    out += names
    return list(dict.fromkeys(out))


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The nvJPEG2000 library, loaded once, with its functions' argument types declared."""
    global _lib
    if _lib is not None:
        return _lib
    errors = []
    for cand in library_candidates():
        try:
            lib = ctypes.CDLL(cand)
        except OSError as exc:
            errors.append(f"{cand}: {exc}")
            continue
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = ctypes.c_int
        _lib = lib
        return lib
    raise MissingDecoderError(f"nvJPEG2000 (libnvjpeg2k) is not installed: pip install {PACKAGE} "
                              f"(or 'gpukit[cuda12]'); tried {'; '.join(errors) or 'nothing'}")


def is_available() -> bool:
    """The library loads and creates a handle (no device needed). Never raises."""
    try:
        with Handle():
            return True
    except Exception:
        return False


def version() -> tuple[int, int, int]:
    """``(major, minor, patch)`` of the loaded library."""
    lib = library()
    out = []
    for prop in range(3):  # MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
        v = ctypes.c_int()
        _check("nvjpeg2kGetProperty", lib.nvjpeg2kGetProperty(prop, ctypes.byref(v)))
        out.append(v.value)
    return tuple(out)


class Handle:
    """An nvJPEG2000 library handle (``nvjpeg2kCreateSimple``); a context manager, destroyed on exit or ``close``."""

    def __init__(self):
        self._lib = library()
        self._ptr = ctypes.c_void_p()
        _check("nvjpeg2kCreateSimple", self._lib.nvjpeg2kCreateSimple(ctypes.byref(self._ptr)))

    @property
    def ptr(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("the nvJPEG2000 handle is closed")
        return self._ptr

    def close(self) -> None:
        if self._ptr:
            _check("nvjpeg2kDestroy", self._lib.nvjpeg2kDestroy(self._ptr))
            self._ptr = ctypes.c_void_p()

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


@dataclass(frozen=True)
class ComponentInfo:
    width: int
    height: int
    precision: int
    signed: bool


@dataclass(frozen=True)
class J2KInfo:
    """What nvJPEG2000 read from a codestream's main header."""

    width: int
    height: int
    tile_width: int
    tile_height: int
    num_tiles_x: int
    num_tiles_y: int
    components: tuple[ComponentInfo, ...] = field(default_factory=tuple)

    @property
    def num_components(self) -> int:
        return len(self.components)


class CodeStream:
    """A parsed JPEG 2000 codestream (``nvjpeg2kStream_t``); keeps the bytes alive while it exists."""

    def __init__(self, handle: Handle, data: bytes, path=None):
        self._lib = library()
        self._handle = handle
        self.path = path
        self._data = bytes(data)
        self._ptr = ctypes.c_void_p()
        _check("nvjpeg2kStreamCreate", self._lib.nvjpeg2kStreamCreate(ctypes.byref(self._ptr)))
        try:
            _check("nvjpeg2kStreamParse",
                   self._lib.nvjpeg2kStreamParse(handle.ptr, self._data, len(self._data), 0, 0, self._ptr), path)
        except Exception:
            self.close()
            raise

    @property
    def ptr(self) -> ctypes.c_void_p:
        if not self._ptr:
            raise ValueError("the nvJPEG2000 stream is closed")
        return self._ptr

    def info(self) -> J2KInfo:
        ii = _ImageInfo()
        _check("nvjpeg2kStreamGetImageInfo", self._lib.nvjpeg2kStreamGetImageInfo(self.ptr, ctypes.byref(ii)),
               self.path)
        comps = []
        for c in range(ii.num_components):
            ci = _ComponentInfo()
            _check("nvjpeg2kStreamGetImageComponentInfo",
                   self._lib.nvjpeg2kStreamGetImageComponentInfo(self.ptr, ctypes.byref(ci), c), self.path)
            comps.append(ComponentInfo(int(ci.component_width), int(ci.component_height), int(ci.precision),
                                       bool(ci.sgn)))
        return J2KInfo(int(ii.image_width), int(ii.image_height), int(ii.tile_width), int(ii.tile_height),
                       int(ii.num_tiles_x), int(ii.num_tiles_y), tuple(comps))

    def close(self) -> None:
        if self._ptr:
            self._lib.nvjpeg2kStreamDestroy(self._ptr)
            self._ptr = ctypes.c_void_p()

    def __enter__(self) -> "CodeStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def parse(data: bytes, handle: Handle | None = None, path=None) -> J2KInfo:
    """Image and component information of one JPEG 2000 codestream (J2K or JP2), read by nvJPEG2000 on the host."""
    own = handle is None
    h = Handle() if own else handle
    try:
        with CodeStream(h, data, path) as cs:
            return cs.info()
    finally:
        if own:
            h.close()


# -- routing ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """Where one frame is decoded: ``"gpu"`` (with nvJPEG2000's output ``pixel_type``) or ``"cpu"``, and why."""

    target: str
    reason: str
    pixel_type: int | None = None


def route(info: J2KInfo | None, *, rows: int, columns: int, samples_per_pixel: int, bits_allocated: int,
          pixel_representation: int, gpu: bool = True, min_pixels: int | None = None) -> Route:
    """Decide whether nvJPEG2000 decodes a frame (into the volume's stored dtype) or the CPU decoders do.

    The GPU takes a frame only when all hold: a device is there (``gpu``);
    nvJPEG2000 parsed it (``info`` is not None); one component (
    ``SamplesPerPixel`` 1) whose size is the image's, equal to Rows x Columns;
    the output dtype the volume holds (from BitsAllocated and
    PixelRepresentation) is one nvJPEG2000 writes for that component:
    ``uint8`` for unsigned precision <= 8 in 8 bits, ``uint16``/``int16`` for
    precision 9..16 in 16 bits with the codestream's signedness equal to
    PixelRepresentation; and the frame has at least ``min_pixels`` pixels
    (default :data:`GPU_MIN_PIXELS`). Everything else goes to the CPU, whose
    pydicom plugins also handle the sign and precision mismatches some
    encoders write.
    """
    if not gpu:
        return Route("cpu", "no CUDA device for nvJPEG2000")
    if info is None:
        return Route("cpu", "nvJPEG2000 could not parse the codestream")
    if samples_per_pixel != 1 or info.num_components != 1:
        return Route("cpu", f"{info.num_components} components (SamplesPerPixel {samples_per_pixel}): "
                            "the GPU path decodes single-component frames")
    comp = info.components[0]
    if (info.width, info.height) != (columns, rows) or (comp.width, comp.height) != (columns, rows):
        return Route("cpu", f"codestream is {info.width}x{info.height} (component {comp.width}x{comp.height}), "
                            f"the header says {columns}x{rows}")
    if bool(comp.signed) != bool(pixel_representation):
        return Route("cpu", f"codestream is {'signed' if comp.signed else 'unsigned'}, PixelRepresentation is "
                            f"{pixel_representation}")
    if bits_allocated == 8 and not comp.signed and comp.precision <= 8:
        pixel_type = NVJPEG2K_UINT8
    elif bits_allocated == 16 and 8 < comp.precision <= 16:
        pixel_type = NVJPEG2K_INT16 if comp.signed else NVJPEG2K_UINT16
    else:
        return Route("cpu", f"precision {comp.precision} ({'signed' if comp.signed else 'unsigned'}) in "
                            f"{bits_allocated}-bit samples has no nvJPEG2000 output type")
    need = GPU_MIN_PIXELS if min_pixels is None else min_pixels
    if rows * columns < need:
        return Route("cpu", f"{columns}x{rows} is below {need} pixels: faster on the CPU")
    return Route("gpu", "nvJPEG2000", pixel_type)


def codestreams(ds) -> list[bytes]:
    """The encapsulated frames of a pydicom Dataset (one codestream per frame)."""
    from pydicom.encaps import generate_frames

    nf = int(ds.get("NumberOfFrames", 1) or 1)
    return list(generate_frames(ds.PixelData, number_of_frames=nf))


# -- decoding on the GPU (needs a device; exercised by the gpu-marked tests only) -----------------------------------
def _device_pointer(arr) -> int:
    cai = getattr(arr, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError(f"out must be a GPU array (CuPy or Numba device array), got {type(arr).__name__}")
    return int(cai["data"][0])


def _stream_pointer(stream) -> int:
    """A CUDA stream as the integer nvJPEG2000 takes: None/0 (legacy default), a CuPy or a Numba stream."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    if hasattr(stream, "ptr"):           # cupy.cuda.Stream
        return int(stream.ptr)
    h = getattr(stream, "handle", None)  # numba.cuda.Stream
    if h is not None:
        return int(getattr(h, "value", h) or 0)
    raise TypeError(f"cannot use {type(stream).__name__} as a CUDA stream")


class Decoder:
    """A decode state and parameters on one handle: ``decode_into`` writes one frame into a device 2-D buffer."""

    def __init__(self, handle: Handle | None = None):
        self._lib = library()
        self._own = handle is None
        self.handle = Handle() if handle is None else handle
        self._state = ctypes.c_void_p()
        self._params = ctypes.c_void_p()
        try:
            _check("nvjpeg2kDecodeStateCreate",
                   self._lib.nvjpeg2kDecodeStateCreate(self.handle.ptr, ctypes.byref(self._state)))
            _check("nvjpeg2kDecodeParamsCreate", self._lib.nvjpeg2kDecodeParamsCreate(ctypes.byref(self._params)))
        except Exception:
            self.close()
            raise

    def decode_into(self, cs: CodeStream, dst_ptr: int, pitch_bytes: int, pixel_type: int, stream: int = 0) -> None:
        """Decode the single-component ``cs`` into device memory at ``dst_ptr`` (rows ``pitch_bytes`` apart)."""
        ptrs = (ctypes.c_void_p * 1)(dst_ptr)
        pitches = (ctypes.c_size_t * 1)(pitch_bytes)
        img = _Image(ctypes.cast(ptrs, _PP), ctypes.cast(pitches, ctypes.POINTER(ctypes.c_size_t)), pixel_type, 1)
        _check("nvjpeg2kDecodeImage",
               self._lib.nvjpeg2kDecodeImage(self.handle.ptr, self._state, cs.ptr, self._params, ctypes.byref(img),
                                             ctypes.c_void_p(stream)), cs.path)

    def close(self) -> None:
        if self._params:
            self._lib.nvjpeg2kDecodeParamsDestroy(self._params)
            self._params = ctypes.c_void_p()
        if self._state:
            self._lib.nvjpeg2kDecodeStateDestroy(self._state)
            self._state = ctypes.c_void_p()
        if self._own and self.handle is not None:
            self.handle.close()

    def __enter__(self) -> "Decoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Frame:
    """One frame to decode: its codestream, the header values routing needs, and a name for errors."""

    data: bytes
    rows: int
    columns: int
    samples_per_pixel: int = 1
    bits_allocated: int = 16
    pixel_representation: int = 0
    path: str | None = None
    index: int = 0
    transfer_syntax: str = "1.2.840.10008.1.2.4.90"


def frames_of(path) -> list[Frame]:
    """The frames of one JPEG 2000 DICOM file, with the header values :func:`route` needs."""
    import pydicom

    ds = pydicom.dcmread(path)
    ts = str(ds.file_meta.TransferSyntaxUID)
    common = dict(rows=int(ds.Rows), columns=int(ds.Columns), samples_per_pixel=int(ds.get("SamplesPerPixel", 1)),
                  bits_allocated=int(ds.BitsAllocated), pixel_representation=int(ds.get("PixelRepresentation", 0)),
                  path=os.fspath(path), transfer_syntax=ts)
    return [Frame(cs, index=i, **common) for i, cs in enumerate(codestreams(ds))]


def _cpu_decode(frame: Frame) -> np.ndarray:
    """The CPU fallback: pydicom's decoder plugins on the file's frame."""
    import pydicom

    if frame.path is None:
        raise DecodeError("a frame without a file cannot be decoded on the CPU")
    try:
        arr = pydicom.pixels.pixel_array(frame.path, index=frame.index)
    except Exception as exc:
        raise DecodeError(f"pixel data could not be decoded ({type(exc).__name__}: {exc})", frame.path) from None
    return np.asarray(arr)


def decode_series(frames: Sequence[Frame], out: Any, *, gpu: bool | None = None, stream=None,
                  min_pixels: int | None = None) -> list[Route]:
    """Decode ``frames`` into ``out[k]`` (``out``: ``(nz, rows, columns)``), on the GPU or the CPU per :func:`route`.

    ``out`` is a device array (CuPy or Numba; frames routed to the GPU are
    decoded straight into their slice, the others decoded by pydicom and
    copied into it) or a numpy array (then every frame is decoded on the
    CPU). ``gpu`` (default: whether ``out`` is on a device) allows the GPU
    path. Returns each frame's :class:`Route`. The stream (default: the
    legacy default stream) is synchronised before returning.
    """
    on_device = hasattr(out, "__cuda_array_interface__")
    gpu = on_device if gpu is None else (bool(gpu) and on_device)
    shape = tuple(int(n) for n in out.shape)
    if len(shape) != 3 or shape[0] != len(frames):
        raise ValueError(f"out must have shape ({len(frames)}, rows, columns), got {shape}")
    dtype = np.dtype(out.dtype)
    routes: list[Route] = []
    handle = Handle() if gpu else None
    decoder = None
    try:
        if gpu:
            decoder = Decoder(handle)
            base = _device_pointer(out)
            sptr = _stream_pointer(stream)
            plane_bytes = shape[1] * shape[2] * dtype.itemsize
        for k, fr in enumerate(frames):
            if (fr.rows, fr.columns) != shape[1:]:
                raise ValueError(f"frame {k} is {fr.columns}x{fr.rows}, out slices are {shape[2]}x{shape[1]}")
            cs = None
            info = None
            if gpu:
                try:
                    cs = CodeStream(handle, fr.data, fr.path)
                    info = cs.info()
                except Nvjpeg2kError:
                    cs = None
            r = route(info, rows=fr.rows, columns=fr.columns, samples_per_pixel=fr.samples_per_pixel,
                      bits_allocated=fr.bits_allocated, pixel_representation=fr.pixel_representation, gpu=gpu,
                      min_pixels=min_pixels)
            if r.target == "gpu" and _PIXEL_DTYPES[r.pixel_type] != dtype:
                r = Route("cpu", f"out is {dtype}, nvJPEG2000 would write {_PIXEL_DTYPES[r.pixel_type]}")
            if r.target == "gpu":
                try:
                    decoder.decode_into(cs, base + k * plane_bytes, shape[2] * dtype.itemsize, r.pixel_type, sptr)
                    _synchronize(stream)  # the stream handle and decode state are reused for the next frame
                except Nvjpeg2kError as exc:
                    r = Route("cpu", f"nvJPEG2000 failed ({exc.reason}); decoded on the CPU")
            if cs is not None:
                cs.close()
            if r.target == "cpu":
                arr = _cpu_decode(fr).astype(dtype, copy=False).reshape(shape[1:])
                if on_device:
                    _copy_to_device(out, k, arr)
                else:
                    out[k] = arr
            routes.append(r)
    finally:
        if decoder is not None:
            decoder.close()
        if handle is not None:
            handle.close()
    if on_device:
        _synchronize(stream)
    return routes


def _synchronize(stream) -> None:
    from numba import cuda

    if stream is None or stream == 0:
        cuda.synchronize()
    elif hasattr(stream, "synchronize"):
        stream.synchronize()
    else:
        cuda.synchronize()


def _copy_to_device(out, k: int, arr: np.ndarray) -> None:
    from numba import cuda

    cuda.as_cuda_array(out)[k].copy_to_device(np.ascontiguousarray(arr))


__all__ = ["PACKAGE", "JPEG2000_SYNTAXES", "GPU_MIN_PIXELS", "Nvjpeg2kError", "library", "library_candidates",
           "is_available", "version", "Handle", "CodeStream", "J2KInfo", "ComponentInfo", "parse", "Route", "route",
           "codestreams", "Decoder", "Frame", "frames_of", "decode_series"]
