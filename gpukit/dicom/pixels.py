"""Reading the pixels of a series on the CPU: stored integers into one preallocated array.

Pixels go into one preallocated ``(nz, ny, nx)`` array of the stored integer
type. Uncompressed little-endian frames are read straight from the file into
their slice of that array (``readinto``, no per-slice ``pixel_array``);
everything else is decoded by pydicom's plugins, several files at a time.

This module sits below both :mod:`gpukit.dicom.load` (which builds the
:class:`~gpukit.Volume`) and :mod:`gpukit.dicom.device` (which uploads chunk
by chunk to a GPU); it imports neither of them.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from ..errors import (CorruptDicomError, DecodeError, InconsistentSeriesError, MissingDecoderError, NoPixelDataError,
                      UnsupportedDicomError)
from .header import UNCOMPRESSED_LE, BoundedReader, Frame, is_foreign_error
from .warnlog import FileWarnings, collecting, merge, reading

#: pip packages that provide pydicom's decoder plugins (for error messages).
PLUGIN_PACKAGES = {
    "pylibjpeg": "pylibjpeg with pylibjpeg-openjpeg (JPEG 2000), pylibjpeg-libjpeg (JPEG, JPEG-LS), pylibjpeg-rle",
    "gdcm": "python-gdcm",
    "pillow": "pillow",
    "pyjpegls": "pyjpegls",
}


def _int_attr(h, kw: str, default=None, minimum: int = 0) -> int:
    v = h.get(kw, default)
    if type(v) is not int or v < minimum:
        raise CorruptDicomError(f"{kw} is {v!r:.40}, not an integer >= {minimum}", h.path)
    return v


def _stored_dtype(frame: Frame) -> np.dtype:
    h = frame.header
    bits = _int_attr(h, "BitsAllocated", 16)
    signed = _int_attr(h, "PixelRepresentation", 0) == 1
    if bits not in (8, 16, 32):
        raise UnsupportedDicomError(f"BitsAllocated {bits} is not supported (8, 16 or 32)", h.path)
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}")


def _decoder_check(ts: str, path: str) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(ts)
    try:
        dec = get_decoder(uid)
    except NotImplementedError:
        raise MissingDecoderError(
            f"no pixel decoder for transfer syntax {uid} ({uid.name}): pydicom has none for it; "
            f"install a decoder plugin that supports it or convert the file (e.g. with gdcmconv --raw)", path) from None
    if not dec.is_available:
        missing = "; ".join(f"{k}: {v}" for k, v in dec.missing_dependencies.items()) \
            if isinstance(dec.missing_dependencies, dict) else "; ".join(dec.missing_dependencies)
        raise MissingDecoderError(
            f"no installed decoder for {uid.name} ({uid}); install one of: "
            f"{', '.join(PLUGIN_PACKAGES.get(p, p) for p in PLUGIN_PACKAGES)} (missing: {missing})", path)


def _read_raw_into(frame: Frame, dst: np.ndarray) -> None:
    h = frame.header
    nbytes = dst.nbytes
    if h.pixel_length >= 0 and h.pixel_length < nbytes:
        raise CorruptDicomError(f"Pixel Data holds {h.pixel_length} bytes, expected {nbytes} "
                                f"({h.get('Rows')}x{h.get('Columns')}x{dst.itemsize})", h.path)
    with open(h.path, "rb", buffering=0) as fh:
        fh.seek(h.pixel_offset)
        got = fh.readinto(memoryview(dst).cast("B"))
    if got != nbytes:
        raise CorruptDicomError(f"file is truncated: Pixel Data should hold {nbytes} bytes, "
                                f"found {got}", h.path)


RLE_LOSSLESS = "1.2.840.10008.1.2.5"
#: most bytes one byte of RLE (PackBits) data can stand for: a 2-byte replicate run makes 128 bytes
RLE_MAX_EXPANSION = 64
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}   # SOF0-15 (no DHT/JPG/DAC), JPEG-LS SOF55


def _codestream_shape(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) from a JPEG / JPEG-LS SOF or a JPEG 2000 / HTJ2K SIZ marker; None if neither is found."""
    b = bytes(frame[:65536])
    if b[:2] == b"\xff\xd8":          # JPEG family: walk the marker segments to the first SOF
        i = 2
        while i + 4 <= len(b):
            if b[i] != 0xFF:
                return None
            m = b[i + 1]
            if m == 0xFF:               # fill byte
                i += 1
                continue
            seg = int.from_bytes(b[i + 2:i + 4], "big")
            if m in _JPEG_SOF:
                if i + 9 > len(b):
                    return None
                return int.from_bytes(b[i + 5:i + 7], "big"), int.from_bytes(b[i + 7:i + 9], "big")
            if m == 0xDA or seg < 2:    # start of scan before any frame header, or a broken length
                return None
            i += 2 + seg
        return None
    k = b.find(b"\xff\x4f\xff\x51")   # SOC then SIZ (a JP2 wrapper puts boxes first)
    if k < 0 or k + 24 > len(b):
        return None
    x, y, x0, y0 = (int.from_bytes(b[k + o:k + o + 4], "big") for o in (8, 12, 16, 20))
    return y - y0, x - x0


def _check_codestream(path: str, ts: str, frame: bytes, rows: int, cols: int, nbytes: int) -> None:
    """Before anything is allocated for a compressed frame: the codestream must describe the frame the header
    does (a damaged Rows or Columns must not make a decoder allocate what the file does not hold)."""
    if ts == RLE_LOSSLESS:
        if nbytes > RLE_MAX_EXPANSION * len(frame) + 4096:
            raise DecodeError(f"{len(frame)} bytes of RLE data cannot hold a {rows}x{cols} frame of {nbytes} bytes "
                              f"(a damaged Rows or Columns?)", path)
        return
    shape = _codestream_shape(frame)
    if shape is None:
        if nbytes > RLE_MAX_EXPANSION * len(frame) + (1 << 20):
            raise DecodeError(f"the compressed frame ({len(frame)} bytes) has no frame header gpukit can read and "
                              f"is too small for a {rows}x{cols} image", path)
        return
    if shape != (rows, cols):
        raise DecodeError(f"the codestream holds a {shape[0]}x{shape[1]} image, the header says Rows x Columns = "
                          f"{rows}x{cols}", path)


def _check_encapsulated(path: str, ds, shape: tuple) -> None:
    """:func:`_check_codestream` on the first frame of a dataset with encapsulated Pixel Data (others: nothing)."""
    from pydicom.encaps import generate_frames

    if "PixelData" not in ds or not ds["PixelData"].is_undefined_length:
        return
    ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "") if hasattr(ds, "file_meta") else ""
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    frame = next(generate_frames(ds.PixelData, number_of_frames=nf))
    rows, cols = int(shape[0]), int(shape[1])
    itemsize = max(int(ds.get("BitsAllocated", 16)) // 8, 1) * int(ds.get("SamplesPerPixel", 1) or 1)
    _check_codestream(path, ts, frame, rows, cols, rows * cols * itemsize)


def _precheck_compressed(path: str, rows: int, cols: int) -> None:
    """The codestream check of one compressed file, before the volume is allocated."""
    import pydicom

    fh = None
    try:
        fh = BoundedReader(path)
        _check_encapsulated(path, pydicom.dcmread(fh), (rows, cols))
    except (DecodeError, MissingDecoderError):
        raise
    except BaseException as exc:
        if not is_foreign_error(exc):
            raise
        raise DecodeError(f"pixel data could not be read ({type(exc).__name__}: {exc})", path) from None
    finally:
        if fh is not None:
            fh.close()



def _decode_file(path: str, indices: Sequence[int], dsts: Sequence[np.ndarray], logs: list) -> None:
    arrays, log = _decode_frames(path, indices, dsts[0].shape)
    for d, a in zip(dsts, arrays):
        d[...] = a
    if log is not None:
        logs.append(log)


def _decode_frames(path: str, indices: Sequence[int], shape: tuple) -> tuple[list[np.ndarray], FileWarnings | None]:
    """Decode the given frames of one file with pydicom's plugins (runs in worker processes too); returns the
    frames and the warnings the decoders raised (None when there were none: they never reach stderr)."""
    logs: list[FileWarnings] = []
    with collecting(), reading(path, logs):
        arrays = _decode_frames_quiet(path, indices, shape)
    return arrays, (logs[0] if logs else None)


def _decode_frames_quiet(path: str, indices: Sequence[int], shape: tuple) -> list[np.ndarray]:
    import pydicom

    fh = None
    try:
        fh = BoundedReader(path)     # a damaged length must not make pydicom allocate it
        ds = pydicom.dcmread(fh)
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise NoPixelDataError("no pixel data", path)
        nf = ds.get("NumberOfFrames", 1) or 1
        _check_encapsulated(path, ds, shape)
        arr = ds.pixel_array
    except (NoPixelDataError, MissingDecoderError, DecodeError):
        raise
    except BaseException as exc:     # BaseException: Rust decoders (pyo3) panic with a BaseException
        if not is_foreign_error(exc):
            raise
        msg = str(exc)
        if "missing" in msg.lower() and "plugin" in msg.lower():
            raise MissingDecoderError(msg, path) from None
        if "less than expected" in msg:
            raise CorruptDicomError(f"file is truncated or its pixel description is wrong ({msg})", path) from None
        raise DecodeError(f"pixel data could not be decoded ({type(exc).__name__}: {exc})", path) from None
    finally:
        if fh is not None:
            fh.close()
    if nf == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != tuple(shape):
        raise DecodeError(f"decoded shape {arr.shape} does not match {nf} frame(s) of {tuple(shape)}", path)
    return [arr[i] for i in indices]


#: Compressed frames per load above which decoding moves to worker processes
#: (pydicom's decoder plugins hold the GIL, so threads do not decode in parallel).
PROCESS_DECODE_MIN_FRAMES = 16
_pools: dict = {}


def _process_pool(workers: int):
    """A process pool kept for reuse (start-up costs ~0.3 s); None where processes cannot be made."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if mp.current_process().daemon:   # e.g. inside a Dask worker: no child processes allowed
        return None
    pool = _pools.get(workers)
    if pool is None:
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        pool = _pools[workers] = ProcessPoolExecutor(workers, mp_context=mp.get_context(method))
    return pool


def _decode_parallel(jobs: list[tuple[str, list[tuple[int, np.ndarray]]]], workers: int, logs: list) -> None:
    n_frames = sum(len(items) for _, items in jobs)
    pool = _process_pool(workers) if workers > 1 and n_frames >= PROCESS_DECODE_MIN_FRAMES and len(jobs) > 1 \
        else None
    if pool is None:
        for path, items in jobs:
            _decode_file(path, [i for i, _ in items], [d for _, d in items], logs)
        return
    from concurrent.futures.process import BrokenProcessPool

    try:
        futs = [(pool.submit(_decode_frames, path, [i for i, _ in items], items[0][1].shape), items)
                for path, items in jobs]
        for fut, items in futs:
            arrays, log = fut.result()
            for (_, dst), arr in zip(items, arrays):
                dst[...] = arr
            if log is not None:
                logs.append(log)
    except BrokenProcessPool:
        # the workers could not start (e.g. a __main__ that cannot be re-imported): decode here
        _pools.pop(workers, None)
        for path, items in jobs:
            _decode_file(path, [i for i, _ in items], [d for _, d in items], logs)


def _fix_unused_bits(out: np.ndarray, bits_stored: int) -> None:
    """Make bits above BitsStored follow the sign (signed) or zero them (unsigned), as pydicom does."""
    bits = out.dtype.itemsize * 8
    if bits_stored >= bits:
        return
    if out.dtype.kind == "u":
        limit = 1 << bits_stored
        if int(out.max(initial=0)) < limit:
            return
    else:
        lo, hi = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
        if out.size == 0 or (int(out.min()) >= lo and int(out.max()) <= hi):
            return
    shift = bits - bits_stored
    np.left_shift(out, shift, out=out)
    np.right_shift(out, shift, out=out)


def check_frames(frames: list[Frame]) -> None:
    """What must hold before a volume for ``frames`` is allocated: one matrix for all, uncompressed Pixel Data
    long enough for it, and the first compressed file's codestream of that matrix (the others are checked as
    they are decoded, before the decoder allocates)."""
    h0 = frames[0].header
    rows, cols = _int_attr(h0, "Rows", None, 1), _int_attr(h0, "Columns", None, 1)
    frame_bytes = rows * cols * _stored_dtype(frames[0]).itemsize
    first_compressed = None
    for f in frames:
        h = f.header
        if int(h.get("Rows")) != rows or int(h.get("Columns")) != cols:
            raise InconsistentSeriesError(f"matrix {h.get('Rows')}x{h.get('Columns')} differs from {rows}x{cols}",
                                          h.path)
        if h.pixel_offset >= 0 and h.pixel_length >= 0 and not h.encapsulated and h.pixel_length < frame_bytes:
            raise CorruptDicomError(f"Pixel Data holds {h.pixel_length} bytes, expected {frame_bytes} "
                                    f"({h.get('Rows')}x{h.get('Columns')}x{frame_bytes // (rows * cols)})", h.path)
        if h.encapsulated and first_compressed is None:
            first_compressed = h.path
    if first_compressed is not None:
        _precheck_compressed(first_compressed, rows, cols)


def read_pixels(frames: list[Frame], workers: int | None = None, out: np.ndarray | None = None, *,
                warnings_out: list | None = None) -> np.ndarray:
    """Read the frames (in the given order) into one ``(nz, ny, nx)`` array of stored values.

    Nothing is allocated before the files are known to agree on the matrix and the first compressed file's
    codestream describes the matrix its header gives. The decoders' warnings go to ``warnings_out``
    (:class:`~gpukit.dicom.warnlog.FileWarnings`, one per file), never to stderr.
    """
    f0 = frames[0]
    h0 = f0.header
    rows, cols = _int_attr(h0, "Rows", None, 1), _int_attr(h0, "Columns", None, 1)
    dtype = _stored_dtype(f0)
    _int_attr(h0, "BitsStored", dtype.itemsize * 8)
    if out is None:
        check_frames(frames)
    if out is None:
        out = np.empty((len(frames), rows, cols), dtype=dtype)
    raw: list[tuple[Frame, np.ndarray]] = []
    by_file: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for k, f in enumerate(frames):
        h = f.header
        if not h.has_pixels:
            raise NoPixelDataError("no pixel data", h.path)
        if h.pixel_offset >= 0 and not h.encapsulated and h.transfer_syntax in UNCOMPRESSED_LE \
                and h.n_frames == 1:
            raw.append((f, out[k]))
        else:
            by_file[h.path].append((f.index, out[k]))
    checked: set[str] = set()
    for f in frames:
        if f.path in by_file and f.header.transfer_syntax not in checked:
            _decoder_check(f.header.transfer_syntax, f.path)
            checked.add(f.header.transfer_syntax)

    # uncompressed frames: plain reads into the volume, one thread unless asked (memcpy-bound);
    # compressed frames: decoded in up to one process per core (the decoders hold the GIL)
    io_threads = workers or 1
    decoders = workers or (os.cpu_count() or 1)

    def run(fn, jobs):
        if io_threads == 1 or len(jobs) < 4:
            for j in jobs:
                fn(*j)
        else:
            with ThreadPoolExecutor(io_threads) as ex:
                for _ in ex.map(lambda j: fn(*j), jobs):
                    pass

    run(_read_raw_into, raw)
    logs: list[FileWarnings] = []
    _decode_parallel(list(by_file.items()), decoders, logs)
    if warnings_out is not None:
        warnings_out.extend(merge(logs))
    _fix_unused_bits(out, int(h0.get("BitsStored", out.dtype.itemsize * 8)))
    return out


__all__ = ["PLUGIN_PACKAGES", "PROCESS_DECODE_MIN_FRAMES", "check_frames", "read_pixels"]
