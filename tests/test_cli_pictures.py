"""``gpukit render`` and ``gpukit mip`` as a user runs them: the PNG/GIF files decode to the expected values.

Oracles are independent of gpukit: the files are read with pydicom, sorted by
their position along the slice normal here, rescaled with pydicom's
``apply_modality_lut`` and windowed with the PS3.3 LINEAR formula written out
in test_intensity.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageSequence

from conftest import data_path, hu_from_pydicom
from test_intensity import assert_matches_oracle_u8, dicom_linear

CT = ("ct_philips_1mm", "In", "Philips", "S21570", "S2020")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpukit.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ct_hu():
    """(HU volume (k, j, i) sorted along the normal, folder) from pydicom alone."""
    folder = data_path(*CT)
    return hu_from_pydicom(folder), folder


def _png(path) -> np.ndarray:
    im = Image.open(path)
    assert im.mode == "L"
    return np.asarray(im)


def test_render_axial_slice_is_the_windowed_slice(ct_hu, tmp_path):
    hu, folder = ct_hu
    k = 70
    r = run("render", str(folder), "--plane", "axial", "--index", str(k), "--window=40,400", "--out", str(tmp_path),
            "--json")
    assert r.returncode == 0, r.stderr
    outs = json.loads(r.stdout)["outputs"]
    assert len(outs) == 1 and outs[0]["path"].endswith("s202_axial.png")
    png = _png(outs[0]["path"])
    assert png.shape == hu.shape[1:]
    assert_matches_oracle_u8(png, dicom_linear(hu[k], 40.0, 400.0))
    assert len(np.unique(png)) > 50
    # nothing but the picture is left in the folder (atomic write, no temporary files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s202_axial.png"]


def test_render_named_planes_and_oblique(ct_hu, tmp_path):
    hu, folder = ct_hu
    r = run("render", str(folder), "--plane", "axial,coronal,sagittal,oblique", "--angles", "20", "30", "0",
            "--window", "bone", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    outs = {o["what"].split()[0]: o for o in json.loads(r.stdout)["outputs"]}
    assert set(outs) == {"axial", "coronal", "sagittal", "oblique"}
    nz, ny, nx = hu.shape
    # square display pixels of the in-plane spacing: 140 slices of 1 mm become ~310 rows of 0.451 mm
    cor = _png(outs["coronal"]["path"])
    assert cor.shape[1] == nx and abs(cor.shape[0] - (nz - 1) * 1.0 / 0.451172 - 1) <= 1
    # the central coronal row of the first slice (rows run head to feet: the last row is slice 0)
    j = (ny - 1) // 2 if ny % 2 else None
    if j is not None:
        expect = dicom_linear(hu[0, j], 400.0, 1800.0)
        assert_matches_oracle_u8(cor[-1], expect)
    obl = _png(outs["oblique"]["path"])
    assert obl.shape[0] > 300 and len(np.unique(obl)) > 50
    assert outs["oblique"]["iop"] != outs["axial"]["iop"]


def test_mip_axial_is_the_max_over_slices(ct_hu, tmp_path):
    hu, folder = ct_hu
    r = run("mip", str(folder), "--window=300,2000", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["outputs"][0]
    png = _png(out["path"])
    assert_matches_oracle_u8(png, dicom_linear(hu.max(axis=0), 300.0, 2000.0))
    # a 10 mm MinIP slab: the central 11 slices (floor(10 / 1) + 1)
    r = run("mip", str(folder), "--mode", "min", "--thickness", "10", "--window", "lung", "--out", str(tmp_path),
            "--json")
    assert r.returncode == 0, r.stderr
    png = _png(json.loads(r.stdout)["outputs"][0]["path"])
    nz = hu.shape[0]
    lo = (nz - 11) // 2
    assert_matches_oracle_u8(png, dicom_linear(hu[lo:lo + 11].min(axis=0), -600.0, 1500.0))


def test_rotating_mip_gif(ct_hu, tmp_path):
    hu, folder = ct_hu
    r = run("mip", str(folder), "--rotate", "6", "--spacing", "2", "--window", "bone", "--out", str(tmp_path),
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["outputs"][0]
    frames = [np.asarray(f.convert("L")) for f in ImageSequence.Iterator(Image.open(out["path"]))]
    assert len(frames) == 6
    # frame 3 looks from the opposite side: the mirror image of frame 0, within interpolation
    a, b = frames[0].astype(int), frames[3][:, ::-1].astype(int)
    assert np.mean(np.abs(a - b)) < 3 and np.mean(np.abs(a - frames[1].astype(int))) > 3


def test_picture_commands_fail_clearly(tmp_path):
    r = run("render", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "nothing-here" in r.stderr
    r = run("render", str(data_path(*CT)), "--window", "lungz", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "lungz" in r.stderr and "lung" in r.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    r = run("mip", "--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "--rotate" in r.stdout


def test_mip_slice_order(tmp_path):
    """``--order slice`` reaches the projection: the PNG is the slice-order image (checked against the scipy oracle
    in test_slice_order.py), windowed, and not the ray-order one."""
    import gpukit
    from gpukit.render import display, parse_window, plane_for

    folder = data_path(*CT)
    pngs = {}
    for order in ("ray", "slice"):
        r = run("mip", str(folder), "--plane", "oblique", "--angles", "20", "30", "15", "--thickness", "20",
                "--window", "bone", "--order", order, "--out", str(tmp_path / order), "--json")
        assert r.returncode == 0, r.stderr
        pngs[order] = _png(json.loads(r.stdout)["outputs"][0]["path"])
    vol = gpukit.load(folder)
    plane = plane_for(vol, "oblique", angles_deg=(20.0, 30.0, 15.0))
    img = gpukit.project(vol, plane, thickness_mm=20, order="slice")
    np.testing.assert_array_equal(pngs["slice"], display(img, parse_window("bone"), vol, projection=True))
    assert pngs["slice"].shape == pngs["ray"].shape and not np.array_equal(pngs["slice"], pngs["ray"])
    assert np.mean(np.abs(pngs["slice"].astype(int) - pngs["ray"])) < 3
