"""The CUDA C++ sources of the ``cupy`` backend: where they live, how one module's source is put together, NVRTC.

The kernels are plain CUDA C++ in the top-level ``kernels/`` folder of a
source checkout; a wheel ships the same files as ``gpukit/kernels``
(``[tool.hatch.build.targets.wheel.force-include]`` in ``pyproject.toml``).
:func:`kernel_dir` finds them either way.

A *module* is one ``.cu`` file compiled with one set of macros (a
:class:`Spec`): element types (``IN_T``, ``OUT_T``), flags (``OUT_ROUNDED``,
``FUSED_WINDOW``), the index width (``INDEX_T``: ``int``, or ``long long``
when an array or a grid stride exceeds ``2**31 - 1``, decided in Python) and
the VOI / mode codes of :mod:`~gpukit.backends.numpy.intensity` and
:mod:`~gpukit.backends.numpy.sampler`. :func:`assemble` writes the module's
source: a banner, one ``#define`` per macro, then the ``.cu`` text with its
``#include "..."`` lines of ``kernels/`` replaced by the included files (so
NVRTC needs no include path and what a test compiles is byte for byte what
the backend compiles).

Every spec gpukit may build is listed by :func:`all_specs` (the tests compile
each of them to PTX for every supported architecture). Compilation always
uses ``--fmad=false``: NVVM would otherwise contract ``a * b + c`` into a
fused multiply-add and change last bits (see :mod:`gpukit.backends._math`).
The float32 sampler (``sample_fast.cu``, :func:`sample_fast_spec`) calls
``fmaf`` explicitly where it wants a fused multiply-add, so it too gives the
same bits on the device and through the host shim.

:func:`compile_ptx` runs NVRTC directly through ``cupy_backends`` (CuPy's own
compile helpers ask for a device); it needs ``libnvrtc``, which the
``nvidia-cuda-nvrtc-cu12`` wheel provides and which is loaded from there when
the system has none. Nothing here imports CuPy.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.resources
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import GpukitError
from ..codes import cuda_defines

#: NVRTC options of every module (contraction off keeps float64 results bit-exact with numpy)
NVRTC_OPTIONS: tuple[str, ...] = ("--fmad=false",)
#: virtual architectures the sources are checked against (``--gpu-architecture=compute_XX``)
ARCHITECTURES: tuple[str, ...] = ("compute_70", "compute_80", "compute_90")
#: largest index a 32-bit ``INDEX_T`` module may form
INDEX32_MAX = 2 ** 31 - 1

#: numpy dtype -> the C type NVRTC sees (no <cstdint> without headers)
C_TYPES: dict[np.dtype, str] = {
    np.dtype(np.uint8): "unsigned char",
    np.dtype(np.int8): "signed char",
    np.dtype(np.uint16): "unsigned short",
    np.dtype(np.int16): "short",
    np.dtype(np.uint32): "unsigned int",
    np.dtype(np.int32): "int",
    np.dtype(np.uint64): "unsigned long long",
    np.dtype(np.int64): "long long",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
}

#: stored-value dtypes the window, rescale, sampler and projection kernels are built for
#: (64-bit integers are read as float64 by the wrapper: the kernels convert every value to float64 first,
#: so that is the same arithmetic)
VALUE_DTYPES: tuple[np.dtype, ...] = tuple(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.uint32,
                                                                 np.int32, np.float32, np.float64))
#: the extrema kernels keep values in their own type (exact min/max of 64-bit integers too)
EXTREMA_DTYPES: tuple[np.dtype, ...] = VALUE_DTYPES + (np.dtype(np.int64), np.dtype(np.uint64))
#: window outputs (gpukit.ops.intensity.window_dtype)
WINDOW_OUT: tuple[np.dtype, ...] = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.int32, np.float32))
#: rescale outputs (gpukit.ops.intensity.rescaled_dtype)
RESCALE_OUT: tuple[np.dtype, ...] = (np.dtype(np.int16), np.dtype(np.float32))
#: sampler outputs without the window stage (float32 HU; int16 for nearest resamples of exact int16 values)
SAMPLE_OUT: tuple[np.dtype, ...] = (np.dtype(np.float32), np.dtype(np.int16))
#: sampler output with the fused window stage
SAMPLE_WINDOW_OUT = np.dtype(np.uint8)

#: the entry points of each source file
ENTRIES: dict[str, tuple[str, ...]] = {
    "window.cu": ("gk_window",),
    "rescale.cu": ("gk_rescale",),
    "extrema.cu": ("gk_extrema_partial", "gk_extrema_final"),
    "project.cu": ("gk_project_k", "gk_project_ji"),
    "sample.cu": ("gk_sample_none_linear", "gk_sample_none_nearest", "gk_sample_combine_linear",
                  "gk_sample_combine_nearest"),
    "sample_fast.cu": ("gk_sample_none_linear_fast", "gk_sample_none_nearest_fast", "gk_sample_combine_linear_fast",
                       "gk_sample_combine_nearest_fast"),
}

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.M)


class KernelSourceError(GpukitError, RuntimeError):
    """gpukit's CUDA sources (``kernels/``) cannot be found or read: a broken install or checkout."""


class KernelCompileError(GpukitError, RuntimeError):
    """A kernel module did not compile; the message carries the compiler's log."""

    def __init__(self, message: str, log: str = ""):
        self.log = log
        super().__init__(message)


# -- finding and assembling sources ---------------------------------------------------------------------------
def kernel_dir() -> Path:
    """The folder holding ``gpukit_common.cuh`` and the ``.cu`` files.

    An installed wheel has them as package data (``gpukit/kernels``); a source
    checkout has them in the top-level ``kernels/`` folder beside ``gpukit/``.
    """
    candidates = []
    try:
        res = importlib.resources.files("gpukit").joinpath("kernels")
        candidates.append(Path(str(res)))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - gpukit itself is importable here
        pass
    candidates.append(Path(__file__).resolve().parents[3] / "kernels")   # gpukit/backends/cuda/src.py -> checkout
    for c in candidates:
        if (c / "gpukit_common.cuh").is_file():
            return c
    raise KernelSourceError("gpukit's CUDA kernel sources were not found (looked in "
                            + ", ".join(str(c) for c in candidates) + "); reinstall gpukit")


def read_kernel(name: str) -> str:
    """The text of ``kernels/<name>``."""
    path = kernel_dir() / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KernelSourceError(f"cannot read kernel source {path}: {exc}") from exc


def expand_includes(text: str, _seen: frozenset = frozenset()) -> str:
    """``text`` with each ``#include "x"`` of a file in ``kernels/`` replaced by that file (recursively, once)."""
    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name in _seen:
            return f"// {name}: already included"
        return f"// ---- begin {name} ----\n{expand_includes(read_kernel(name), _seen | {name})}\n// ---- end {name} ----"
    return _INCLUDE.sub(sub, text)


def c_type(dtype) -> str:
    """The C type of a numpy dtype (``ValueError`` naming it when the kernels have none)."""
    dt = np.dtype(dtype)
    try:
        return C_TYPES[dt]
    except KeyError:
        raise ValueError(f"the CUDA kernels have no element type for dtype {dt}; supported: "
                         + ", ".join(str(d) for d in C_TYPES)) from None


@dataclass(frozen=True)
class Spec:
    """One kernel module: a source file of ``kernels/`` and the macros it is compiled with."""

    source: str
    defines: tuple[tuple[str, str], ...]

    @property
    def entries(self) -> tuple[str, ...]:
        return ENTRIES[self.source]

    @property
    def name(self) -> str:
        """A readable name encoding the specialisation, e.g. ``window.cu[IN_T=short,OUT_T=unsigned char,...]``."""
        return f"{self.source}[" + ",".join(f"{k}={v}" for k, v in self.defines) + "]"

    def define(self, key: str) -> str | None:
        return dict(self.defines).get(key)


def _common_defines(index64: bool) -> list[tuple[str, str]]:
    return [("INDEX_T", "long long" if index64 else "int")] + cuda_defines()


def _check(dtype, allowed, what: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in allowed:
        raise ValueError(f"the cupy backend's {what} has no kernel for dtype {dt}; supported: "
                         + ", ".join(str(d) for d in allowed))
    return dt


def window_spec(in_dtype, out_dtype, index64: bool) -> Spec:
    i = _check(in_dtype, VALUE_DTYPES, "window (input)")
    o = _check(out_dtype, WINDOW_OUT, "window (output)")
    return Spec("window.cu", tuple([("IN_T", c_type(i)), ("OUT_T", c_type(o)),
                                    ("OUT_ROUNDED", "1" if o.kind in "iu" else "0")] + _common_defines(index64)))


def rescale_spec(in_dtype, out_dtype, index64: bool) -> Spec:
    i = _check(in_dtype, VALUE_DTYPES, "rescale (input)")
    o = _check(out_dtype, RESCALE_OUT, "rescale (output)")
    return Spec("rescale.cu", tuple([("IN_T", c_type(i)), ("OUT_T", c_type(o))] + _common_defines(index64)))


def extrema_spec(in_dtype, index64: bool) -> Spec:
    i = _check(in_dtype, EXTREMA_DTYPES, "min/max")
    return Spec("extrema.cu", tuple([("IN_T", c_type(i))] + _common_defines(index64)))


def project_spec(in_dtype, index64: bool) -> Spec:
    i = _check(in_dtype, VALUE_DTYPES, "axis projection")
    return Spec("project.cu", tuple([("IN_T", c_type(i))] + _common_defines(index64)))


def sample_spec(in_dtype, out_dtype, fused_window: bool, index64: bool) -> Spec:
    i = _check(in_dtype, VALUE_DTYPES, "sampler (input)")
    if fused_window:
        o = _check(out_dtype, (SAMPLE_WINDOW_OUT,), "sampler with a window stage (output)")
    else:
        o = _check(out_dtype, SAMPLE_OUT, "sampler (output)")
    return Spec("sample.cu", tuple([("IN_T", c_type(i)), ("OUT_T", c_type(o)),
                                    ("OUT_ROUNDED", "1" if o.kind in "iu" else "0"),
                                    ("FUSED_WINDOW", "1" if fused_window else "0")] + _common_defines(index64)))


def sample_fast_spec(in_dtype, out_dtype, fused_window: bool, index64: bool) -> Spec:
    """The float32 sampler (precision "fast", ``sample_fast.cu``): the same macros as :func:`sample_spec`."""
    exact = sample_spec(in_dtype, out_dtype, fused_window, index64)
    return Spec("sample_fast.cu", exact.defines)


def all_specs() -> list[Spec]:
    """Every module the backend can build: each source, each element-type combination, both index widths."""
    out: list[Spec] = []
    for index64 in (False, True):
        for i in VALUE_DTYPES:
            out += [window_spec(i, o, index64) for o in WINDOW_OUT]
            out += [rescale_spec(i, o, index64) for o in RESCALE_OUT]
            out.append(project_spec(i, index64))
            out += [sample_spec(i, o, False, index64) for o in SAMPLE_OUT]
            out.append(sample_spec(i, SAMPLE_WINDOW_OUT, True, index64))
            out += [sample_fast_spec(i, o, False, index64) for o in SAMPLE_OUT]
            out.append(sample_fast_spec(i, SAMPLE_WINDOW_OUT, True, index64))
        out += [extrema_spec(i, index64) for i in EXTREMA_DTYPES]
    return out


BANNER = ("// generated by gpukit.backends.cuda.src.assemble: the macros below override the #ifndef defaults\n"
          "// of the kernel sources (one module per source and specialisation)\n")


def assemble(spec: Spec) -> str:
    """The full source of ``spec``'s module: banner, one ``#define`` per macro, the ``.cu`` with includes inlined."""
    lines = [BANNER, f"// module {spec.name}\n"]
    lines += [f"#define {k} {v}\n" for k, v in spec.defines]
    lines.append(f"// ---- {spec.source} ----\n")
    lines.append(expand_includes(read_kernel(spec.source)))
    return "".join(lines)


# -- NVRTC ------------------------------------------------------------------------------------------------------
_nvrtc = None


def _preload_libnvrtc() -> None:
    """Load libnvrtc from the nvidia-cuda-nvrtc-cu12 wheel (global symbols) so cupy_backends finds it."""
    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        for lib in sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so*"))):
            if ".alt." in lib or "builtins" in lib:
                continue
            try:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                return
            except OSError:
                continue


def nvrtc():
    """``cupy_backends.cuda.libs.nvrtc``, with libnvrtc loaded (a :class:`~gpukit.errors.EnvironmentProblem` if absent)."""
    global _nvrtc
    if _nvrtc is not None:
        return _nvrtc
    from ...errors import EnvironmentProblem

    _preload_libnvrtc()
    try:
        from cupy_backends.cuda.libs import nvrtc as mod
        mod.getVersion()
    except Exception as exc:  # ImportError, or libnvrtc missing (CuPy raises its own error types)
        raise EnvironmentProblem("NVRTC is not usable here: install cupy-cuda12x and nvidia-cuda-nvrtc-cu12 "
                                 f"(pip install 'gpukit[cuda12]'); {type(exc).__name__}: {exc}") from exc
    _nvrtc = mod
    return mod


def compile_ptx(source: str, arch: str = "compute_90", name: str = "gpukit.cu",
                options: tuple[str, ...] = NVRTC_OPTIONS) -> str:
    """Compile CUDA C++ ``source`` to PTX for virtual architecture ``arch`` with NVRTC (no device needed).

    Raises
    ------
    KernelCompileError
        The source does not compile; the message holds NVRTC's log.
    """
    mod = nvrtc()
    opts = [f"--gpu-architecture={arch}", *options]
    prog = mod.createProgram(source, name, [], [])
    try:
        try:
            mod.compileProgram(prog, opts)
        except Exception as exc:
            try:
                log = mod.getProgramLog(prog)
            except Exception:  # noqa: BLE001 - the log is best effort, the failure is reported either way
                log = ""
            log = log.decode(errors="replace") if isinstance(log, bytes) else str(log)
            raise KernelCompileError(f"NVRTC could not compile {name} for {arch} (options {' '.join(opts)}):\n"
                                     f"{log.strip() or exc}", log) from exc
        ptx = mod.getPTX(prog)
    finally:
        mod.destroyProgram(prog)
    return ptx.decode() if isinstance(ptx, bytes) else str(ptx)


def compile_spec_ptx(spec: Spec, arch: str = "compute_90") -> str:
    """PTX of one module (:func:`assemble` then :func:`compile_ptx`)."""
    return compile_ptx(assemble(spec), arch, name=spec.name)


__all__ = ["kernel_dir", "read_kernel", "assemble", "Spec", "all_specs", "window_spec", "rescale_spec",
           "extrema_spec", "project_spec", "sample_spec", "sample_fast_spec", "compile_ptx", "compile_spec_ptx",
           "KernelCompileError",
           "KernelSourceError", "C_TYPES", "VALUE_DTYPES", "EXTREMA_DTYPES", "WINDOW_OUT", "RESCALE_OUT",
           "SAMPLE_OUT", "SAMPLE_WINDOW_OUT", "NVRTC_OPTIONS", "ARCHITECTURES", "INDEX32_MAX", "ENTRIES"]
