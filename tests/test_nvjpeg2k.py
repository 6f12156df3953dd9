"""The nvJPEG2000 binding: the library from the wheel, codestream parsing, routing, and (on a GPU) decoding.

Without a device, libnvjpeg2k loads, creates a handle and parses codestreams,
so those run here. Oracles: the wheel's own metadata (version), the DICOM
header of each file (Rows, Columns, SamplesPerPixel, BitsStored /
BitsAllocated, PixelRepresentation), an independent parse of each
codestream's SIZ marker segment written below from ITU-T T.800 A.5.1, and the
uncompressed copies of the same images in the real-data folder (the decoded
pixels). Decoding on the GPU runs only where a device is (``gpu`` marker).
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, data_path

from gpukit.dicom import nvjpeg2k as J
from gpukit.errors import DecodeError, MissingDecoderError

J2K_SYNTAXES = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
PYD = ("pydicom_data_subset", "data_store", "data")


def _device() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


DEVICE = _device()
NO_DEVICE = "decoding with nvJPEG2000 needs a CUDA device (nvjpeg2kDecodeStateCreate fails without one)"


# -- an independent reader of the SIZ marker segment (T.800 A.5.1) -------------------------------------------------
def siz(codestream: bytes) -> dict:
    """Image and component sizes, precision and sign from the SIZ segment (SOC 0xFF4F, then SIZ 0xFF51)."""
    at = codestream.find(b"\xff\x4f\xff\x51")   # also finds the codestream inside a JP2 'jp2c' box
    assert at >= 0, "no SOC + SIZ marker"
    p = at + 4
    (lsiz, _rsiz, xsiz, ysiz, xosiz, yosiz, xtsiz, ytsiz, xtosiz, ytosiz,
     csiz) = struct.unpack(">HHIIIIIIIIH", codestream[p:p + 38])
    assert lsiz == 38 + 3 * csiz
    comps = []
    for c in range(csiz):
        ssiz, xr, yr = codestream[p + 38 + 3 * c: p + 41 + 3 * c]
        comps.append(J.ComponentInfo(width=math.ceil(xsiz / xr) - math.ceil(xosiz / xr),
                                     height=math.ceil(ysiz / yr) - math.ceil(yosiz / yr),
                                     precision=(ssiz & 0x7F) + 1, signed=bool(ssiz & 0x80)))
    return dict(width=xsiz - xosiz, height=ysiz - yosiz, tile_width=xtsiz, tile_height=ytsiz,
                num_tiles_x=math.ceil((xsiz - xtosiz) / xtsiz), num_tiles_y=math.ceil((ysiz - ytosiz) / ytsiz),
                components=tuple(comps))


def jpeg2000_files() -> list[Path]:
    """Every DICOM file under the real-data folder whose transfer syntax is JPEG 2000."""
    import pydicom

    data_path()  # skips when the folder is absent
    found = []
    for dirpath, _, names in os.walk(DATA):
        for n in names:
            p = Path(dirpath, n)
            with open(p, "rb") as fh:
                head = fh.read(132)
            if head[128:132] != b"DICM":
                continue
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            if str(ds.file_meta.get("TransferSyntaxUID", "")) in J2K_SYNTAXES:
                found.append(p)
    return sorted(found)


@pytest.fixture(scope="module")
def j2k_files():
    files = jpeg2000_files()
    names = {p.name for p in files}
    assert {"9.dcm", "emri_small_jpeg_2k_lossless.dcm", "MR2_J2KR.dcm", "MR2_J2KI.dcm"} <= names, names
    return files


# -- the library ------------------------------------------------------------------------------------------------------
def test_library_loads_from_the_wheel():
    from importlib.metadata import PackageNotFoundError, version

    try:
        wheel = version(J.PACKAGE)
    except PackageNotFoundError:
        pytest.skip(f"{J.PACKAGE} is not installed here")
    lib = J.library()
    first = J.library_candidates()[0]
    assert Path(first).name.startswith("libnvjpeg2k") and Path(first).parent.parent.name == "nvjpeg2k"  # the wheel
    assert Path(lib._name).resolve() == Path(first).resolve()
    assert ".".join(map(str, J.version())) == ".".join(wheel.split(".")[:3])   # 0.11.0 from 0.11.0.51
    assert J.is_available()


def test_a_missing_library_is_an_error_naming_the_package(monkeypatch):
    monkeypatch.setattr(J, "_lib", None)
    monkeypatch.setattr(J, "library_candidates", lambda: ["/nonexistent/libnvjpeg2k.so.0"])
    with pytest.raises(MissingDecoderError, match="pip install nvidia-nvjpeg2k-cu12"):
        J.library()
    assert not J.is_available()


def test_garbage_and_truncated_codestreams_are_decode_errors(j2k_files):
    import pydicom

    with pytest.raises(J.Nvjpeg2kError, match="BAD_JPEG") as err:
        J.parse(b"\xff\x4f\xff\x51" + b"\x00" * 10)
    assert isinstance(err.value, DecodeError) and err.value.status == 3
    cs = J.codestreams(pydicom.dcmread(j2k_files[0]))[0]
    with pytest.raises(J.Nvjpeg2kError):
        J.parse(cs[:30], path=j2k_files[0])


# -- parsing every JPEG 2000 frame of the real data --------------------------------------------------------------
def test_every_jpeg2000_frame_parses_as_its_header_and_siz_say(j2k_files):
    import pydicom

    n_frames = 0
    with J.Handle() as h:
        for path in j2k_files:
            ds = pydicom.dcmread(path)
            frames = J.codestreams(ds)
            assert len(frames) == int(ds.get("NumberOfFrames", 1) or 1)
            for k, cs in enumerate(frames):
                info = J.parse(cs, h, path=path)
                where = f"{path.name} frame {k}"
                # the DICOM header
                assert (info.width, info.height) == (ds.Columns, ds.Rows), where
                assert info.num_components == ds.SamplesPerPixel, where
                for comp in info.components:
                    assert (comp.width, comp.height) == (ds.Columns, ds.Rows), where
                    assert comp.precision in (ds.BitsStored, ds.BitsAllocated), where   # encoders write either
                    assert comp.signed == bool(ds.PixelRepresentation), where
                # the SIZ marker segment, read independently
                ref = siz(cs)
                assert info.components == ref.pop("components"), where
                assert {k_: getattr(info, k_) for k_ in ref} == ref, where
                n_frames += 1
    assert n_frames >= 13


# -- routing -----------------------------------------------------------------------------------------------------------
def _info(w=512, h=512, ncomp=1, precision=12, signed=False, cw=None, ch=None):
    comp = J.ComponentInfo(w if cw is None else cw, h if ch is None else ch, precision, signed)
    return J.J2KInfo(w, h, w, h, 1, 1, (comp,) * ncomp)


HDR = dict(rows=512, columns=512, samples_per_pixel=1, bits_allocated=16, pixel_representation=0)


@pytest.mark.parametrize("info,changes,target,pixel_type,why", [
    (_info(), {}, "gpu", J.NVJPEG2K_UINT16, "nvJPEG2000"),
    (_info(signed=True), {"pixel_representation": 1}, "gpu", J.NVJPEG2K_INT16, "nvJPEG2000"),
    (_info(precision=16), {}, "gpu", J.NVJPEG2K_UINT16, "nvJPEG2000"),
    (_info(precision=8), {"bits_allocated": 8}, "gpu", J.NVJPEG2K_UINT8, "nvJPEG2000"),
    (_info(), {"gpu": False}, "cpu", None, "no CUDA device"),
    (None, {}, "cpu", None, "could not parse"),
    (_info(ncomp=3), {"samples_per_pixel": 3}, "cpu", None, "3 components"),
    (_info(cw=256, ch=256), {}, "cpu", None, "component 256x256"),
    (_info(w=500), {}, "cpu", None, "the header says 512x512"),
    (_info(signed=True), {}, "cpu", None, "PixelRepresentation is 0"),
    (_info(precision=8), {}, "cpu", None, "precision 8"),                       # 8-bit samples in 16 bits
    (_info(precision=8, signed=True), {"bits_allocated": 8, "pixel_representation": 1}, "cpu", None,
     "precision 8 (signed)"),                                                   # nvJPEG2000 has no int8 output
    (_info(precision=20), {"bits_allocated": 32}, "cpu", None, "precision 20"),
    (_info(w=128, h=128), {"rows": 128, "columns": 128}, "cpu", None, "below 65536 pixels"),
    (_info(w=128, h=128), {"rows": 128, "columns": 128, "min_pixels": 0}, "gpu", J.NVJPEG2K_UINT16, "nvJPEG2000"),
])
def test_route(info, changes, target, pixel_type, why):
    kw = dict(HDR, **changes)
    r = J.route(info, **kw)
    assert (r.target, r.pixel_type) == (target, pixel_type)
    assert why in r.reason


def test_route_of_the_real_frames(j2k_files):
    """The real series: the 384x384 and 1024x1024 frames go to the GPU, the 64x64 multi-frame to the CPU."""
    want = {"9.dcm": "gpu", "MR2_J2KR.dcm": "gpu", "MR2_J2KI.dcm": "gpu", "emri_small_jpeg_2k_lossless.dcm": "cpu"}
    with J.Handle() as h:
        for path in j2k_files:
            for fr in J.frames_of(path):
                r = J.route(J.parse(fr.data, h), rows=fr.rows, columns=fr.columns,
                            samples_per_pixel=fr.samples_per_pixel, bits_allocated=fr.bits_allocated,
                            pixel_representation=fr.pixel_representation)
                assert r.target == want[path.name], (path.name, r)
                assert r.target == "cpu" or r.pixel_type == J.NVJPEG2K_UINT16


# -- decoding ----------------------------------------------------------------------------------------------------------
def _reference(*parts) -> np.ndarray:
    """The pixels of the uncompressed copy of an image (an independent oracle for the decoded values)."""
    import pydicom

    arr = pydicom.dcmread(data_path(*parts)).pixel_array
    return arr[None] if arr.ndim == 2 else arr


CASES = [(("ts_compressed", "In", "9.dcm"), ("ts_compressed", "In", "1.dcm")),
         (PYD + ("emri_small_jpeg_2k_lossless.dcm",), PYD + ("emri_small.dcm",)),
         (PYD + ("MR2_J2KR.dcm",), PYD + ("MR2_UNCR.dcm",))]


@pytest.mark.parametrize("j2k,raw", CASES, ids=lambda p: p[-1])
def test_decode_series_without_a_device_decodes_every_frame_on_the_cpu(j2k, raw):
    frames = J.frames_of(data_path(*j2k))
    ref = _reference(*raw)
    out = np.zeros((len(frames),) + ref.shape[1:], ref.dtype)
    routes = J.decode_series(frames, out)
    assert [r.target for r in routes] == ["cpu"] * len(frames)
    np.testing.assert_array_equal(out, ref)        # every frame in its own slot
    assert len(np.unique(ref)) > 50


@pytest.mark.skipif(DEVICE, reason="a CUDA device is present: the decode state can be created")
def test_decode_state_needs_a_device():
    with pytest.raises(J.Nvjpeg2kError, match="nvjpeg2kDecodeStateCreate"):
        J.Decoder()


@pytest.mark.gpu
@pytest.mark.skipif(not DEVICE, reason=NO_DEVICE)
@pytest.mark.parametrize("j2k,raw", CASES, ids=lambda p: p[-1])
@pytest.mark.parametrize("min_pixels", [None, 0])
def test_gpu_decode_matches_the_uncompressed_image(j2k, raw, min_pixels):
    from numba import cuda

    frames = J.frames_of(data_path(*j2k))
    ref = _reference(*raw)
    out = cuda.device_array((len(frames),) + ref.shape[1:], ref.dtype)
    out.copy_to_device(np.zeros(out.shape, ref.dtype))
    routes = J.decode_series(frames, out, min_pixels=min_pixels)
    want = "gpu" if min_pixels == 0 or ref.shape[1] * ref.shape[2] >= J.GPU_MIN_PIXELS else "cpu"
    assert [r.target for r in routes] == [want] * len(frames), routes
    np.testing.assert_array_equal(out.copy_to_host(), ref)


@pytest.mark.gpu
@pytest.mark.skipif(not DEVICE, reason=NO_DEVICE)
def test_gpu_decode_of_lossy_jpeg2000_is_close_to_openjpeg_and_takes_cupy_volumes():
    cupy = pytest.importorskip("cupy")
    import pydicom

    path = data_path(*PYD, "MR2_J2KI.dcm")
    cpu = pydicom.dcmread(path).pixel_array.astype(np.int32)
    out = cupy.zeros((1,) + cpu.shape, cupy.uint16)
    routes = J.decode_series(J.frames_of(path), out)
    assert routes[0].target == "gpu"
    diff = np.abs(cupy.asnumpy(out[0]).astype(np.int32) - cpu)
    assert diff.max() <= 2 and diff.mean() < 0.5      # the same irreversible 9/7 codestream, two decoders
