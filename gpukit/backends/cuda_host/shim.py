"""The CUDA kernels on the CPU: the same ``kernels/*.cu`` compiled as C++ with a host shim, called through ctypes.

This is the second launcher of :mod:`gpukit.backends.cuda.kernels` (the first
is CuPy's, on a GPU). It exists so that the ``cupy`` backend's kernels *and*
its whole Python wrapper (module specialisation, 64-bit index choice, launch
sizes, argument marshalling) run and are cross-checked against the numpy
reference on machines without a GPU, such as CI.

How: :func:`host_source` puts ``kernels/host_shim.h`` (``__global__``,
``blockIdx``/``threadIdx``/``blockDim``/``gridDim`` as thread-local
variables, the math built-ins) in front of the module's assembled source
(:func:`gpukit.backends.cuda.src.assemble`, the very text NVRTC compiles)
and appends one exported ``gkhost_<entry>`` per entry point that loops over
the grid and the block calling the kernel (valid because the kernels use no
shared memory and no synchronisation). ``g++ -x c++ -std=c++14 -O2 -fPIC
-shared -ffp-contract=off`` builds it; libraries are cached by content hash
in :func:`cache_dir`.

Each entry point's parameter list is read from the preprocessed source, and
every call is checked against it: an array must have exactly the element type
of its pointer parameter (and be C-contiguous, and writeable unless
``const``), a scalar must be a numpy scalar of exactly the parameter's type.
CuPy passes numpy scalars by their dtype, so a wrapper bug that would pass an
``int64`` where a kernel takes ``int`` fails here instead of corrupting a GPU
launch.

Why this lives in the package and not under ``tests/``: it is the launcher the
tests run the *shipped* wrapper through, and it must find the shipped sources
the same way (an installed wheel carries ``gpukit/kernels/host_shim.h``). The
``cuda-host`` backend (:mod:`gpukit.backends.cuda_host`) runs it in strict
mode on pretend-device arrays; ``auto`` never picks it. It is slow (one host
thread) and meant for verification only.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cuda import src as cuda_src
from ..cuda.src import KernelCompileError, Spec

#: the C++ compiler (``GPUKIT_HOST_CXX``, else ``CXX``, else g++)
CXX = os.environ.get("GPUKIT_HOST_CXX") or os.environ.get("CXX") or "g++"
#: flags of every host build: contraction off keeps float64 results bit-exact with numpy (as --fmad=false)
CXXFLAGS: tuple[str, ...] = ("-x", "c++", "-std=c++14", "-O2", "-fPIC", "-shared", "-ffp-contract=off")
#: bump when the generated launcher code changes (part of the cache key)
_GENERATOR = 1

_C_TO_DTYPE = {v: k for k, v in cuda_src.C_TYPES.items()}
_CTYPES = {
    np.dtype(np.int8): ctypes.c_int8, np.dtype(np.uint8): ctypes.c_uint8,
    np.dtype(np.int16): ctypes.c_int16, np.dtype(np.uint16): ctypes.c_uint16,
    np.dtype(np.int32): ctypes.c_int32, np.dtype(np.uint32): ctypes.c_uint32,
    np.dtype(np.int64): ctypes.c_int64, np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double,
}


def is_available() -> bool:
    return shutil.which(CXX) is not None


def missing_dependencies() -> list[str]:
    return [] if is_available() else [f"a C++ compiler ({CXX} not found; apt-get install g++)"]


def cache_dir() -> Path:
    """Where built libraries are kept (``GPUKIT_HOST_CACHE``, else a per-user folder in the temp dir)."""
    env = os.environ.get("GPUKIT_HOST_CACHE")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    d = Path(env) if env else Path(tempfile.gettempdir()) / f"gpukit-host-{uid}"
    d.mkdir(parents=True, exist_ok=True)
    return d


# -- sources and signatures ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One kernel parameter as the preprocessed source declares it."""

    name: str
    ctype: str
    dtype: np.dtype
    pointer: bool
    const: bool

    def describe(self) -> str:
        return f"{'const ' if self.const else ''}{self.ctype}{' *' if self.pointer else ''} {self.name}"


def parse_param(text: str) -> Param:
    """``'const unsigned short *__restrict__ data'`` -> Param(data, unsigned short, uint16, pointer, const)."""
    toks = text.replace("*", " * ").split()
    toks = [t for t in toks if t not in ("__restrict__", "__restrict")]
    if len(toks) < 2:
        raise ValueError(f"cannot read kernel parameter {text!r}")
    name = toks[-1]
    pointer = "*" in toks
    const = "const" in toks[:toks.index("*")] if pointer else False
    ctype = " ".join(t for t in toks[:-1] if t not in ("const", "*"))
    if ctype not in _C_TO_DTYPE:
        raise ValueError(f"kernel parameter {text!r} has a type the host shim does not know ({ctype!r})")
    return Param(name, ctype, _C_TO_DTYPE[ctype], pointer, const)


def signatures(preprocessed: str, entries) -> dict[str, list[Param]]:
    """Parameter lists of ``entries`` in preprocessed C++ text."""
    out = {}
    for e in entries:
        m = re.search(r'extern\s+"C"\s+void\s+' + re.escape(e) + r"\s*\(([^)]*)\)", preprocessed)
        if m is None:
            raise KernelCompileError(f"entry point {e} not found in the preprocessed host source")
        out[e] = [parse_param(p) for p in m.group(1).split(",") if p.strip()]
    return out


def host_source(spec: Spec) -> str:
    """The host shim followed by ``spec``'s assembled module source (what NVRTC compiles, verbatim)."""
    return (f"// host build of {spec.name}\n" + cuda_src.expand_includes('#include "host_shim.h"') + "\n"
            + cuda_src.assemble(spec))


def _launchers(sigs: dict[str, list[Param]]) -> str:
    parts = []
    for e, params in sigs.items():
        decl = ", ".join(f"{'const ' if p.const else ''}{p.ctype}{' *' if p.pointer else ''} {p.name}"
                         for p in params)
        names = ", ".join(p.name for p in params)
        parts.append(f'extern "C" void gkhost_{e}(unsigned int gx, unsigned int gy, unsigned int gz, '
                     f"unsigned int bx, unsigned int by, unsigned int bz{', ' + decl if decl else ''}) {{\n"
                     f"    GKHOST_LOOP(gx, gy, gz, bx, by, bz, {e}({names}));\n}}\n")
    return "\n// ---- launchers generated by gpukit.backends.cuda_host.shim ----\n" + "".join(parts)


def _run(cmd: list[str], stdin: str, what: str) -> str:
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as exc:
        raise KernelCompileError(f"{what}: the C++ compiler {cmd[0]!r} was not found") from exc
    if res.returncode != 0:
        raise KernelCompileError(f"{what} failed ({' '.join(cmd)}):\n{res.stderr.strip()}", res.stderr)
    return res.stdout


class HostModule:
    """A built host library of one spec: ``lib`` (ctypes) and the parameter lists of its entry points."""

    def __init__(self, spec: Spec, path: Path, sigs: dict[str, list[Param]]):
        self.spec = spec
        self.path = path
        self.sigs = sigs
        self.lib = ctypes.CDLL(str(path))
        self.functions = {}
        for e, params in sigs.items():
            f = getattr(self.lib, f"gkhost_{e}")
            f.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_void_p if p.pointer else _CTYPES[p.dtype] for p in params]
            f.restype = None
            self.functions[e] = f


def build(spec: Spec) -> HostModule:
    """Compile (or load from the cache) the host library of ``spec``."""
    src = host_source(spec)
    key = hashlib.sha256("\0".join([src, CXX, " ".join(CXXFLAGS), str(_GENERATOR)]).encode()).hexdigest()[:24]
    d = cache_dir()
    stem = f"{spec.source.split('.')[0]}-{key}"
    so, meta = d / f"{stem}.so", d / f"{stem}.json"
    if so.is_file() and meta.is_file():
        raw = json.loads(meta.read_text())
        sigs = {e: [parse_param(p) for p in ps] for e, ps in raw.items()}
        return HostModule(spec, so, sigs)
    pre = _run([CXX, "-E", "-P", "-x", "c++", "-std=c++14", "-"], src, f"preprocessing {spec.name}")
    try:
        sigs = signatures(pre, spec.entries)
    except (ValueError, KernelCompileError) as exc:
        # the usual cause is a source (or a macro) that does not compile: report the compiler's own words
        res = subprocess.run([CXX, "-fsyntax-only", "-x", "c++", "-std=c++14", "-"], input=src, capture_output=True,
                             text=True, timeout=300)
        log = res.stderr.strip()
        raise KernelCompileError(f"host build of {spec.name} failed:\n{log or exc}", log) from exc
    full = src + _launchers(sigs)
    tmp_dir = Path(tempfile.mkdtemp(prefix=stem, dir=d))
    try:
        cpp = tmp_dir / f"{stem}.cpp"
        cpp.write_text(full)
        tmp_so = tmp_dir / f"{stem}.so"
        _run([CXX, *CXXFLAGS, str(cpp), "-o", str(tmp_so)], "", f"host build of {spec.name}")
        tmp_meta = tmp_dir / f"{stem}.json"
        tmp_meta.write_text(json.dumps({e: [p.describe() for p in ps] for e, ps in sigs.items()}))
        os.replace(tmp_so, so)  # atomic: a concurrent build of the same spec writes the same bytes
        os.replace(tmp_meta, meta)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return HostModule(spec, so, sigs)


class HostFunction:
    """One entry point of a host module: ``f(grid, block, args)``, every argument checked against its parameter."""

    def __init__(self, module: HostModule, entry: str, device_arrays=None):
        self.module = module
        self.entry = entry
        #: None: numpy arrays are passed (plain host runs); else the stand-in module whose device arrays alone are
        #: accepted, as a GPU launch accepts only device pointers (a numpy array there is a wrapper bug)
        self.device_arrays = device_arrays
        self.params = module.sigs[entry]
        self.cfunc = module.functions[entry]
        #: number of launches and the last (grid, block): tests read them to see small inputs span several blocks
        self.calls = 0
        self.last_launch: tuple[tuple, tuple] | None = None

    def __call__(self, grid, block, args) -> None:
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        block = tuple(int(b) for b in block) + (1,) * (3 - len(block))
        if min(grid + block) < 1:
            raise ValueError(f"{self.entry}: empty launch grid {grid} x block {block}")
        if len(args) != len(self.params):
            raise TypeError(f"{self.entry} takes {len(self.params)} arguments, got {len(args)}")
        cargs = []
        for p, a in zip(self.params, args):
            where = f"{self.entry} ({self.module.spec.name}) argument {p.name!r} ({p.describe()})"
            if p.pointer:
                if self.device_arrays is not None:
                    if not self.device_arrays.is_device_array(a):
                        raise TypeError(f"{where}: expected a device array, got {type(a).__name__} (a host array "
                                        "passed to a GPU kernel)")
                    a = self.device_arrays.raw(a)     # the device pointer, as a launch passes it
                elif not isinstance(a, np.ndarray):
                    raise TypeError(f"{where}: expected a numpy array, got {type(a).__name__}")
                if a.dtype != p.dtype:
                    raise TypeError(f"{where}: array of dtype {a.dtype}, expected {p.dtype}")
                if not a.flags.c_contiguous:
                    raise TypeError(f"{where}: array is not C-contiguous")
                if not p.const and not a.flags.writeable:
                    raise TypeError(f"{where}: array is read-only")
                cargs.append(ctypes.c_void_p(a.ctypes.data))
            else:
                if not isinstance(a, np.generic) or a.dtype != p.dtype:
                    raise TypeError(f"{where}: expected a numpy {p.dtype} scalar, got {type(a).__name__} "
                                    f"{getattr(a, 'dtype', '')}")
                cargs.append(a.item())
        self.calls += 1
        self.last_launch = (grid, block)
        self.cfunc(*grid, *block, *cargs)


class HostLauncher:
    """Launcher over host builds; modules memoised per spec.

    ``strict=False``: arrays are numpy arrays (``xp`` is numpy). ``strict=True``:
    arrays are the stand-in's pretend-device arrays (:mod:`gpukit.backends.standin`,
    ``xp`` is its CuPy-like namespace) and kernels refuse host arrays, as a GPU launch would.
    """

    def __init__(self, strict: bool = False):
        if strict:
            from .. import standin

            self.xp = standin.xp
            self._device_arrays = standin
        else:
            self.xp = np
            self._device_arrays = None
        self._modules: dict[Spec, HostModule] = {}
        self._functions: dict[tuple[Spec, str], HostFunction] = {}
        self._locks: dict[Spec, threading.Lock] = {}
        self._lock = threading.Lock()

    def module(self, spec: Spec) -> HostModule:
        with self._lock:
            lock = self._locks.setdefault(spec, threading.Lock())
        with lock:
            mod = self._modules.get(spec)
            if mod is None:
                mod = self._modules[spec] = build(spec)
            return mod

    def device_id(self) -> int:
        return 0

    def function(self, spec: Spec, entry: str) -> HostFunction:
        f = self._functions.get((spec, entry))
        if f is None:
            f = self._functions[(spec, entry)] = HostFunction(self.module(spec), entry, self._device_arrays)
        return f

    def prebuild(self, specs, workers: int = 2) -> None:
        """Build several modules at once (g++ runs in parallel; the GIL is free while it does)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(self.module, list(dict.fromkeys(specs))))


__all__ = ["HostLauncher", "HostFunction", "HostModule", "build", "host_source", "signatures", "parse_param",
           "cache_dir", "is_available", "missing_dependencies"]
