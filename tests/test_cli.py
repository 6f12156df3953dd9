"""The gpukit command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pydicom

from conftest import data_path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpukit.cli", *args], capture_output=True, text=True, timeout=300)


def test_info_backends():
    r = run("info")
    assert r.returncode == 0
    assert "numpy" in r.stdout and "numba" in r.stdout and "cupy" in r.stdout
    rep = json.loads(run("info", "--json").stdout)
    names = {b["name"]: b for b in rep["backends"]}
    assert names["numpy"]["available"] and not names["cupy"]["available"] and names["cupy"]["missing"]
    assert rep["backend"] in names


def test_info_json_on_tilted_study():
    root = data_path("ct_philips_tilt", "In")
    r = run("info", str(root), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    vols = {s["series_number"]: s for s in d["series"] if s["kind"] == "volume"}
    assert set(vols) == {201, 301}
    geo = {g["id"]: g for g in d["geometry"]}
    g201 = geo[vols[201]["uid"]]
    assert abs(g201["tilt_deg"] - (-18.5)) < 0.01
    # the affine's origin (column 3) is the first slice's position: one of the files' IPPs
    ipps = [tuple(float(x) for x in pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient)
            for p in (root / "Philips" / "S21610" / "S2010").iterdir() if p.name != "DIRFILE"]
    origin = tuple(g201["affine_lps"][n][3] for n in range(3))
    assert min(sum((a - b) ** 2 for a, b in zip(origin, ipp)) for ipp in ipps) < 1e-8
    assert any("DICOMDIR" in s["reason"] for s in d["skipped"])


def test_info_text_and_bad_path(tmp_path):
    r = run("info", str(data_path("mr_siemens_sag_fieldmap", "In")))
    assert r.returncode == 0 and "sagittal" in r.stdout and "affine" in r.stdout
    r = run("info", str(tmp_path / "does-not-exist"))
    assert r.returncode == 2 and "does-not-exist" in r.stderr
