"""Loading onto the GPU: the chunked decode-and-upload schedule, run here with a host stand-in for the device.

:class:`gpukit.dicom.device.HostDevice` performs every step of the schedule
(allocate, fill a pinned buffer, asynchronous upload, wait on the event,
finish) on host memory and records the order, so the test checks what the
GPU path relies on: every slice lands in its place, the two buffers
alternate, and no buffer is refilled while its upload may still be in
flight. The real CuPy path is compared with numpy where a device exists.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpukit
from gpukit import testing
from gpukit.dicom import device as gdev
from gpukit.dicom.api import scan
from gpukit.dicom.load import build_volume

from conftest import data_path


def _only_volume(path):
    found = scan(path)
    (info,) = found.volumes
    return info


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_real_ct_streams_to_the_device_slice_for_slice(chunk):
    folder = data_path("ct_philips_1mm")
    ref = gpukit.load(folder)
    dev = gdev.HostDevice()
    info = _only_volume(folder)
    if chunk == 1000:      # the default chunk size, through build_volume as load(backend=...) uses it
        data = build_volume(info, device=dev, workers=1).data
    else:
        from gpukit.dicom.load import series_geometry

        frames, _, _ = series_geometry(list(info.frames))
        data = gdev.read_series_to_device(frames, workers=1, device=dev, chunk_slices=chunk)
    np.testing.assert_array_equal(data, ref.data)
    assert data.dtype == ref.data.dtype and data.dtype.kind in "iu"     # the stored integers, not float32
    assert not dev.violations
    uploads = [e for e in dev.log if e[0] == "upload"]
    n = ref.shape[0]
    c = min(chunk, n) if chunk != 1000 else min(n, gdev.CHUNK_BYTES // (512 * 512 * 2))
    assert len(uploads) == -(-n // c) and sum(e[2] for e in uploads) == n
    if len(uploads) > 2:   # two pinned buffers, used in turn; each reuse waits for its previous upload
        keys = [e[1] for e in uploads]
        assert keys[0] != keys[1] and keys[::2] == [keys[0]] * len(keys[::2])
        fills = [i for i, e in enumerate(dev.log) if e[0] == "fill"]
        for i in fills[2:]:
            assert dev.log[i - 1][0] == "wait"


def test_compressed_series_streams_too(tmp_path):
    uid = "1.2.840.10008.1.2.4.80"   # JPEG-LS lossless, decoded by the CPU plugins chunk by chunk
    if uid not in testing.available_transfer_syntaxes():
        pytest.skip("no JPEG-LS encoder here to write the test series")
    s = testing.write_series(tmp_path, shape=(9, 40, 36), transfer_syntax=uid, seed=5)
    dev = gdev.HostDevice()
    from gpukit.dicom.load import series_geometry

    frames, _, _ = series_geometry(list(_only_volume(tmp_path).frames))
    data = gdev.read_series_to_device(frames, workers=1, device=dev, chunk_slices=2)
    np.testing.assert_array_equal(data, s.stored)
    assert not dev.violations and sum(e[0] == "upload" for e in dev.log) == 5


def test_a_volume_larger_than_free_device_memory_fails_before_reading(tmp_path):
    s = testing.write_series(tmp_path, shape=(6, 32, 32), seed=1)
    dev = gdev.HostDevice(free=6 * 32 * 32 * 2)           # 90% of it is not enough
    with pytest.raises(gpukit.DeviceMemoryError) as ei:
        build_volume(_only_volume(tmp_path), device=dev)
    msg = str(ei.value)
    assert "MiB" in msg and "free" in msg and str(tmp_path) in msg
    assert not dev.log                                       # nothing was read or uploaded
    assert isinstance(ei.value, gpukit.EnvironmentProblem) and s.stored.size


def test_load_on_the_gpu_without_one_names_what_is_missing(tmp_path):
    testing.write_series(tmp_path, shape=(4, 16, 16), seed=2)
    with pytest.raises(gpukit.BackendUnavailableError) as ei:
        gpukit.load(tmp_path, backend="cupy")
    assert "cupy" in str(ei.value) and ("device" in str(ei.value) or "cupy-cuda12x" in str(ei.value))
    vol = gpukit.load(tmp_path, backend="numba")             # a CPU backend keeps the volume in host memory
    assert isinstance(vol.data, np.ndarray)


def _have_device() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _have_device(), reason="needs a CUDA device")
def test_load_to_a_real_device_equals_the_host_volume():
    import cupy as cp

    folder = data_path("ct_philips_1mm")
    vol = gpukit.load(folder, backend="cupy")
    assert isinstance(vol.data, cp.ndarray) and vol.data.dtype == gpukit.load(folder).data.dtype
    np.testing.assert_array_equal(vol.to_numpy(), gpukit.load(folder).data)
