"""The GPU path without a GPU: every public operation, the Reslicer, render, the CLI and a batch, on every backend.

One test body runs on each backend the ``backend`` fixture yields (numpy,
numba, the device stand-in ``cuda-host``, and the GPU backends where a device
exists). ``cuda-host`` runs the real ``kernels/*.cu`` through the same wrapper
as the ``cupy`` backend on pretend-device arrays that refuse implicit host
conversion (``np.asarray``, ``float``, PIL, ``np.save`` all raise, as with
CuPy) and count every copy, so a module that converts a device array
implicitly fails here, and the copy counts prove residency.

Oracles: the numpy backend (the reference, itself checked against
``map_coordinates``, SimpleITK and pydicom elsewhere), and for the pictures
and batch outputs the numpy backend's own files.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import gpukit
from gpukit import Plane, Volume
from gpukit.backends import get_backend, lookup

from conftest import data_path, host, require_backend

CT = ("ct_philips_1mm", "In", "Philips", "S21570", "S2020")


def small_volume(seed: int = 3) -> Volume:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3000, (14, 26, 22)).astype(np.int16)
    data[:, 8:18, 6:16] += 900                                        # a bright block: projections have structure
    aff = np.array([[0.7, 0.05, 0.0, -10.0], [0.0, 0.8, 0.3, 4.0], [0.02, 0.0, 2.0, 7.0], [0, 0, 0, 1]])
    return Volume(data, aff, {"rescale_slope": np.linspace(0.9, 1.1, 14) + seed / 1000, "rescale_intercept": -1024.0,
                              "window_center": [40.0], "window_width": [400.0], "modality": "CT"})


def _ops(vol: Volume, plane: Plane) -> dict:
    """Every public operation once, on ``vol`` (its own backend by default)."""
    return {
        "hu": vol.hu(),
        "rescale": gpukit.rescale(vol),
        "window file": gpukit.window(vol),
        "window preset": gpukit.window(vol, preset="lung"),
        "window sigmoid": gpukit.window(vol, 40, 400, function="SIGMOID"),
        "reslice": gpukit.reslice(vol, plane),
        "reslice nearest": gpukit.reslice(vol, plane, interp="nearest"),
        "reslice window": gpukit.reslice(vol, plane, window=(40, 400)),
        "axial mip": gpukit.project(vol, "axial"),
        "coronal minip": gpukit.project(vol, "coronal", mode="min"),
        "slab": gpukit.project(vol, plane, mode="max", thickness_mm=6.0),
        "oblique avg": gpukit.project(vol, plane, mode="mean"),
        "rotating": gpukit.rotating_mip(vol, 3, shape=(10, 12)),
        "resample": gpukit.resample(vol, np.diag([1.1, 1.2, 1.5, 1.0]) @ np.eye(4), (6, 9, 8)).data,
        "regularize": gpukit.regularize(vol, 1.5).data,
        "reslicer": gpukit.Reslicer(vol).reslice(plane).copy(),
        "reslicer window": gpukit.Reslicer(vol, window=(40, 400)).reslice(plane).copy(),
    }


def test_every_operation_on_a_resident_volume_stays_there_and_equals_numpy(backend):
    vol = small_volume()
    plane = Plane.rotated(vol, (25, -10, 35), shape=(17, 19), spacing=0.9)
    ref = _ops(vol.to("numpy"), plane)
    res = vol.to(backend)
    be = get_backend(backend)
    assert res.backend == backend and be.owns(res.data)
    assert res.device == ("host" if be.location == "host" else f"device ({backend})")
    got = _ops(res, plane)
    scale = float(np.abs(ref["hu"]).max())
    for name, r in ref.items():
        g = got[name]
        assert be.owns(g), f"{name}: the result left the backend's device ({type(g).__name__})"
        g = host(g)
        assert g.dtype == r.dtype and g.shape == r.shape, name
        if g.dtype == np.uint8:
            tol = 1 if "sigmoid" in name else 0                       # SIGMOID: exp() may differ in the last bit
            assert np.abs(g.astype(int) - r.astype(int)).max() <= tol, name
        else:
            np.testing.assert_allclose(g, r, rtol=0, atol=1e-6 * scale, err_msg=name)
    assert np.unique(ref["reslice window"]).size > 20 and np.unique(ref["slab"]).size > 20   # not trivial images


def test_an_irregular_series_is_regularized_on_every_backend(backend, tmp_path):
    """The slice-by-slice path of regularize (a series loaded with on_irregular="keep"), which _ops does not reach."""
    from gpukit import testing

    pos = [[-100.0, -120.0, 50.0 + z] for z in (0.0, 2.5, 5.0, 8.5, 11.0, 13.5)]
    testing.write_series(tmp_path, shape=(6, 24, 20), positions=pos, seed=2)
    vol = gpukit.load(tmp_path, on_irregular="keep")
    ref = gpukit.regularize(vol, backend="numpy")
    got = gpukit.regularize(vol.to(backend))
    assert get_backend(backend).owns(got.data) and got.shape == ref.shape
    hu = vol.hu()
    assert np.array_equal(ref.data[0], hu[0]) and not np.array_equal(ref.data[4], hu[4])   # 10 mm lies between 8.5 and 11
    np.testing.assert_allclose(host(got.data), ref.data, rtol=0, atol=1e-3)
    np.testing.assert_allclose(got.affine, ref.affine)


def test_a_resident_volume_is_uploaded_once_and_planes_come_back_only_when_asked():
    """100 reslices through the Reslicer and 100 through plain reslice: the volume goes up once, with its rescale
    table in one more copy, at ``Volume.to``; the reslices upload nothing; the only download besides the caller's
    ``.get()`` calls is the per-slice value range (one copy of 2 x nz values, for the default fill)."""
    require_backend("cuda-host")
    from gpukit.backends import standin

    vol = small_volume(5)
    nz = vol.shape[0]
    rng = np.random.default_rng(9)
    planes = [Plane.rotated(vol, rng.uniform(-60, 60, 3), shape=(16, 18)) for _ in range(100)]
    with standin.count_copies() as up:
        res = vol.to("cuda-host")
    assert (up.h2d, up.h2d_bytes, up.d2h) == (2, vol.data.nbytes + 2 * nz * 8, 0)
    with standin.count_copies() as c:
        rs = gpukit.Reslicer(res)
        imgs = [rs.reslice(p) for p in planes[:50]] + [gpukit.reslice(res, p) for p in planes[50:]]
        assert all(standin.is_device_array(i) for i in imgs)
        assert (c.h2d, c.d2h) == (0, 1) and c.d2h_bytes == 2 * nz * vol.data.itemsize
        kept = [imgs[k].get() for k in (3, 60, 99)]                      # the caller asks for three planes
    assert (c.h2d, c.d2h) == (0, 4)
    np.testing.assert_allclose(kept[2], gpukit.reslice(vol, planes[99], backend="numpy"), rtol=0, atol=1e-3)
    # a host volume given to a device backend is uploaded once too (cached with the volume), not per operation;
    # its rescale table is already on the device (cached by content)
    with standin.count_copies() as c:
        for p in planes[:10]:
            gpukit.reslice(vol, p, backend="cuda-host")
    assert c.h2d == 1 and c.h2d_bytes == vol.data.nbytes


def test_device_arrays_are_never_converted_implicitly():
    """The stand-in refuses what CuPy refuses, so any gpukit module that does it fails in these tests."""
    require_backend("cuda-host")
    res = small_volume().to("cuda-host")
    img = gpukit.reslice(res, Plane.axial(res))
    for convert in (np.asarray, np.array, float, lambda a: Image.fromarray(a), lambda a: np.save(os.devnull, a)):
        with pytest.raises((TypeError, AttributeError)):
            convert(img[0, 0] if convert is float else img)
    with pytest.raises(TypeError, match="host|device|Implicit"):   # a host backend is told what to do, not fed
        gpukit.reslice(res, Plane.axial(res), backend="numpy")
    assert host(img).shape == img.shape                               # the explicit edge works


def test_the_contract_is_met_by_every_registered_backend():
    """Every backend provides every required operation, and those its capabilities promise, with the contract's
    parameters; capabilities are codes from the one codes module."""
    import inspect

    from gpukit.backends import REGISTRY, codes
    from gpukit.backends.contract import CAPABILITY_OPS, REQUIRED_OPS, Backend

    for name in REGISTRY:
        be = lookup(name)
        assert isinstance(be, Backend) and be.location in ("host", "device")
        assert set(be.capabilities) <= set(codes.CAPABILITIES), name
        if not be.is_available():
            continue
        k = be.kernels()
        ops = list(REQUIRED_OPS) + [op for cap, names in CAPABILITY_OPS.items() if be.has(cap) for op in names]
        for op in ops:
            fn = getattr(k, op)
            want = [p for p in inspect.signature(getattr(Backend, op)).parameters if p not in ("self", "kwargs")]
            have = inspect.signature(fn).parameters
            positional = [p for p in want if p not in ("window", "bricks", "precision")]   # capability keywords
            assert list(have)[:len(positional)] == positional, f"{name}.{op}: {list(have)} vs {positional}"
        if be.has(codes.FUSED_WINDOW):
            assert "window" in inspect.signature(k.sample_grid).parameters, name
        if be.has(codes.FAST_PRECISION):
            for op in ("sample_grid",) + (("sample_grid_bricked",) if be.has(codes.BRICKED_LAYOUT) else ()):
                assert "precision" in inspect.signature(getattr(k, op)).parameters, (name, op)


def test_other_libraries_arrays_come_in_zero_copy():
    """A CPU array of another library (anything speaking DLPack, as a PyTorch CPU tensor does) becomes a volume's
    data without a copy; the results are numpy arrays equal to those of the numpy original."""

    class Foreign:                      # a DLPack producer that is not a numpy array (numpy gives its protocol)
        def __init__(self, a):
            self._a = a

        def __dlpack__(self, **kw):
            return self._a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self._a.__dlpack_device__()

    vol = small_volume(7)
    data = get_backend("numpy").asarray(Foreign(vol.data))
    assert isinstance(data, np.ndarray) and np.shares_memory(data, vol.data)
    res = Volume(data, vol.affine, vol.meta).to("numpy")
    assert np.shares_memory(res.data, vol.data)
    plane = Plane.rotated(vol, (5, 10, 15), shape=(9, 9))
    np.testing.assert_array_equal(gpukit.reslice(res, plane), gpukit.reslice(vol, plane, backend="numpy"))


# -- pictures, CLI and batch on the real CT ----------------------------------------------------------------------
def _pngs(folder: Path) -> dict:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def _gif_frames(path: Path) -> np.ndarray:
    im = Image.open(path)
    frames = []
    for k in range(im.n_frames):
        im.seek(k)
        frames.append(np.asarray(im.convert("L")))
    return np.stack(frames)


@pytest.mark.slow
def test_cli_render_and_mip_on_the_stand_in_equal_numpy(tmp_path):
    require_backend("cuda-host")
    from gpukit.cli import main

    ct = str(data_path(*CT))
    for be in ("numpy", "cuda-host"):
        out = tmp_path / be
        assert main(["render", ct, "--backend", be, "--window", "lung", "--out", str(out)]) == 0
        assert main(["render", ct, "--backend", be, "--plane", "oblique", "--angles", "20", "30", "0",
                     "--out", str(out)]) == 0
        assert main(["mip", ct, "--backend", be, "--plane", "coronal", "--out", str(out)]) == 0
        assert main(["mip", ct, "--backend", be, "--plane", "axial", "--thickness", "20", "--out", str(out)]) == 0
        assert main(["mip", ct, "--backend", be, "--rotate", "3", "--spacing", "4", "--out", str(out)]) == 0
    ref, got = _pngs(tmp_path / "numpy"), _pngs(tmp_path / "cuda-host")
    assert sorted(ref) == sorted(got) and len(ref) == 6
    for name in ref:
        assert ref[name].shape == got[name].shape, name
        assert np.abs(ref[name].astype(int) - got[name].astype(int)).max() <= 1, name
        assert ref[name].std() > 10, name                                    # a real picture, not a flat field
    (gif,) = (tmp_path / "numpy").glob("*.gif")
    a, b = _gif_frames(gif), _gif_frames(tmp_path / "cuda-host" / gif.name)
    assert a.shape == b.shape and a.shape[0] == 3 and np.abs(a.astype(int) - b.astype(int)).max() <= 1


BATCH_RECIPE = {"recipe": {"name": "device"},
                "output": [{"kind": "reslice", "name": "coronal", "plane": "coronal", "window": "soft_tissue"},
                           {"kind": "mip", "name": "axial_mip", "plane": "axial"},
                           {"kind": "slab_mips", "name": "slab", "plane": "axial", "thickness_mm": 40.0,
                            "step_mm": 60.0, "window": "lung"},
                           {"kind": "rotating_mip", "name": "rot", "frames": 3, "axis": "z", "size": 64,
                            "window": "bone"},
                           {"kind": "resample", "name": "iso", "spacing_mm": 2.0, "format": "nifti"},
                           {"kind": "volume", "name": "hu", "format": "npy", "hu": True}]}


@pytest.mark.slow
def test_batch_on_the_stand_in_equals_numpy(tmp_path):
    """A real LocalCluster; the worker reads the CT to the (stand-in) device, computes every output there and
    brings back only what the writers write."""
    require_backend("cuda-host")
    from gpukit.batch import Manifest, parse_recipe, run_batch

    ct = data_path(*CT)
    recipe = parse_recipe(BATCH_RECIPE)
    for be in ("numpy", "cuda-host"):
        res = run_batch(ct, tmp_path / be, recipe, backend=be, n_workers=1, progress=False)
        assert res.counts.get("ok") == 1 and not res.counts.get("failed"), res.records   # (+ the DIRFILE, skipped)
        (rec,) = [r for r in Manifest(tmp_path / be).records.values() if r.get("status") == "ok"]
        assert rec["backend"] == be
    outs = {be: {Path(p).name: p for p in (tmp_path / be).rglob("*") if p.is_file() and p.suffix != ".jsonl"
                 and not p.name.startswith(".")} for be in ("numpy", "cuda-host")}
    assert sorted(outs["numpy"]) == sorted(outs["cuda-host"])
    names = sorted(outs["numpy"])
    assert {"coronal.png", "axial_mip.png", "rot.gif", "iso.nii.gz", "hu.npy"} <= set(names)
    assert sum(n.startswith("slab_") for n in names) >= 2
    for name in names:
        a, b = outs["numpy"][name], outs["cuda-host"][name]
        if name.endswith(".png"):
            x, y = np.asarray(Image.open(a)).astype(int), np.asarray(Image.open(b)).astype(int)
            assert x.shape == y.shape and np.abs(x - y).max() <= 1 and x.std() > 5, name
        elif name.endswith(".gif"):
            x, y = _gif_frames(a).astype(int), _gif_frames(b).astype(int)
            assert x.shape == y.shape and np.abs(x - y).max() <= 1, name
        elif name.endswith(".nii.gz"):
            x, y = np.asarray(nib.load(a).dataobj, np.float64), np.asarray(nib.load(b).dataobj, np.float64)
            np.testing.assert_allclose(y, x, rtol=0, atol=2e-7 * np.abs(x).max() + 1e-6, err_msg=name)
            np.testing.assert_allclose(nib.load(b).affine, nib.load(a).affine, atol=1e-9)
        elif name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(b), np.load(a))
