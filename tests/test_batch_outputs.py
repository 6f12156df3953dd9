"""Batch image outputs on a real LocalCluster, over the real scans plus synthetic series, and ``gpukit demo``.

Outputs are re-read: PNGs decode to the windowed values computed here from
pydicom-read pixels (PS3.3 LINEAR), NIfTI files carry the volume's voxels and
affine, GIFs have their frames. Inputs are read-only and stay untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image, ImageSequence

import gpukit
from gpukit import geometry, testing
from gpukit.batch import Manifest, load_recipe, parse_recipe, run_batch

from conftest import data_path, hu_from_pydicom
from test_intensity import assert_matches_oracle_u8, dicom_linear

CT = ("ct_philips_1mm", "In", "Philips", "S21570", "S2020")


def test_exact_outputs_of_a_real_ct(tmp_path):
    """Axial full MIP, the central axial plane and the stored volume, each against an independent oracle."""
    folder = data_path(*CT)
    recipe = parse_recipe({"recipe": {"name": "exact"}, "output": [
        {"kind": "mip", "name": "mip_axial", "plane": "axial", "window": [300, 2000]},
        {"kind": "reslice", "name": "centre", "plane": "axial", "window": [40, 400]},
        {"kind": "volume", "name": "stored", "format": "nifti"},
    ]})
    res = run_batch(folder, tmp_path / "out", recipe, n_workers=1, progress=False)
    assert res.counts == {"ok": 1, "skipped_file": 1}, res.counts      # the DIRFILE is listed as skipped
    rec = res.records[0]
    outs = {Path(o["path"]).stem.split(".")[0]: tmp_path / "out" / o["path"] for o in rec["outputs"]}
    hu = hu_from_pydicom(folder)
    nz = hu.shape[0]
    assert_matches_oracle_u8(np.asarray(Image.open(outs["mip_axial"])), dicom_linear(hu.max(axis=0), 300, 2000))
    # 140 slices: the centre plane lies halfway between slices 69 and 70
    mid = (hu[nz // 2 - 1] + hu[nz // 2]) / 2 if nz % 2 == 0 else hu[nz // 2]
    assert_matches_oracle_u8(np.asarray(Image.open(outs["centre"])), dicom_linear(mid, 40, 400))
    img = nib.load(outs["stored"])
    np.testing.assert_array_equal(np.asarray(img.dataobj), hu.transpose(2, 1, 0))     # nibabel applies scl_*
    vol = gpukit.load(folder)
    np.testing.assert_allclose(img.affine, geometry.LPS_TO_RAS @ vol.affine, atol=1e-4)


def test_default_recipe_over_the_real_scans_and_synthetic_series(tmp_path):
    """Every volume series under ../shared/data and a synthetic folder gets every default output."""
    data = data_path()
    synth = tmp_path / "synth"
    testing.write_series(synth / "tilted", shape=(16, 40, 36), tilt_deg=12.0, series_number=7, seed=3)
    testing.write_not_dicom(synth / "readme.txt")
    testing.write_truncated(testing.write_series(synth / "cut_src", shape=(6, 64, 64), seed=4).files[0],
                            synth / "broken" / "cut.dcm", keep_fraction=0.7)
    before = {p: p.stat().st_mtime_ns for p in Path(data).rglob("*") if p.is_file()}
    found = gpukit.scan([str(data), str(synth)])
    out = tmp_path / "out"
    res = run_batch([data, synth], out, load_recipe(None), n_workers=2, progress=False)
    m = Manifest(out)
    assert not res.ok and res.counts["failed"] == 1 and res.counts["ok"] == len(res.records) - 1
    volumes = {s.id for s in found.volumes}
    ok = {k for k, r in m.records.items() if r.get("status") == "ok"}
    failed = {k: r for k, r in m.records.items() if r.get("status") == "failed"}
    # the only failure is the synthetic series holding a truncated copy, and the error names the file
    assert len(failed) == 1, {k: (r["error"], r["message"]) for k, r in failed.items()}
    (bad,) = failed.values()
    assert bad["error"] == "CorruptDicomError" and "cut.dcm" in bad["message"]
    assert ok == volumes - set(failed)
    assert len(ok) >= 9          # 8 real volume series (CT, tilted CT x2, MR, enhanced MR x3, multi-frame) + 1
    # non-image series and non-DICOM files are accounted for, with reasons
    assert any(r["status"] == "skipped_file" and "readme.txt" in r["key"] for r in m.records.values())
    assert any(r["status"] == "skipped_file" and "DICOMDIR" in r["message"] for r in m.records.values())
    assert any(r["status"] == "not_volume" and r.get("message") for r in m.records.values())
    assert set(m.records) >= {s.id for s in found} | {f"file:{os.path.realpath(k.path)}" for k in found.skipped}
    for key in ok:
        rec = m.records[key]
        names = [Path(o["path"]).name for o in rec["outputs"]]
        # outputs that make no sense for a series (5 px wide images of a 5-slice MR) are skipped, with a reason
        skipped = {s["name"] for s in rec.get("skipped_outputs", []) if s.get("reason")}
        expect = {"coronal.png", "sagittal.png", "rotating_mip.gif", "iso1mm.nii.gz"}
        assert {n for n in expect if n.split(".")[0] not in skipped} <= set(names), names
        assert "axial_mip_slab" in skipped or any(n.startswith("axial_mip_slab_") for n in names)
        assert len(skipped) <= 2 and (not skipped or rec["modality"] != "CT"), skipped
        for o in rec["outputs"]:
            p = out / o["path"]
            if p.suffix == ".png":
                a = np.asarray(Image.open(p))
                assert a.dtype == np.uint8 and a.ndim == 2 and a.size > 0
            elif p.suffix == ".gif":
                assert sum(1 for _ in ImageSequence.Iterator(Image.open(p))) == 36
            else:
                img = nib.load(p)
                zooms = img.header.get_zooms()[:3]
                np.testing.assert_allclose(zooms, 1.0, atol=1e-5)             # 1 mm isotropic
    # the tilted synthetic series' resampled NIfTI is unsheared
    tilted = next(k for k in ok if m.records[k].get("series_number") == 7)
    p = next(out / o["path"] for o in m.records[tilted]["outputs"] if o["path"].endswith(".nii.gz"))
    aff = nib.load(p).affine
    assert geometry.tilt_angle_deg(geometry.LPS_TO_RAS @ aff) == pytest.approx(0.0, abs=1e-4)
    assert not [p for p in out.rglob(".gpukit-tmp-*")]
    assert {p: p.stat().st_mtime_ns for p in Path(data).rglob("*") if p.is_file()} == before


def test_demo_runs_and_leaves_pictures(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gpukit.cli", "demo", "--out", str(tmp_path / "demo"), "--workers",
                        "1", "--scale", "0.25"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pictures and volumes" in r.stdout
    m = Manifest(tmp_path / "demo" / "results")
    recs = [r for r in m.records.values() if r.get("status") == "ok"]
    assert len(recs) == 2
    vols = {rec["series_number"]: gpukit.load(tmp_path / "demo" / "dicom", series=rec["series_number"])
            for rec in recs}
    # HU-calibrated: air, fat, soft tissue and bone where the phantom puts them
    hu = vols[2].hu()
    assert hu.min() <= -990 and hu.max() >= 700
    assert abs(float(np.median(hu[hu > -200])) - 40) < 60
    # the tilted variant is sheared in index space, its patient upright: made regular, its spine column is
    # where the untilted series has it
    assert abs(vols[3].meta["tilt_deg"]) > 10 and abs(vols[2].meta["tilt_deg"]) < 1e-6
    for rec in recs:
        for o in rec["outputs"]:
            p = tmp_path / "demo" / "results" / o["path"]
            assert p.exists() and p.stat().st_size == o["bytes"]


def test_batch_benchmark_smallest_size_runs(tmp_path):
    """The suite's batch section (1 vs 2 workers, stage shares) at its quick size, through the suite's command."""
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--sections", "batch", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / "results.json").read_text())
    rows = {row["impl"]: row for row in res["rows"]}
    one, two = rows["gpukit batch, LocalCluster 1 worker"], rows["gpukit batch, LocalCluster 2 workers"]
    assert "series_per_s" in one and "speedup_vs_1_worker" in two     # reported, not judged
    assert set(one["stage_share"]) == {"read", "decode", "compute", "write"}
    assert abs(sum(one["stage_share"].values()) - 1) < 0.01
    assert "series/s" in r.stdout and res["machine"]["cpus"] and list(tmp_path.glob("*.png"))

def _sigint_default():
    """In the child: SIGINT back to its default, so Python installs its Ctrl-C handler even when this test
    runs in a background job (which starts with SIGINT ignored, and the child would inherit that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)



def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(tmp_path):
    """SIGINT to ``gpukit batch`` mid-run: exit 130, a consistent manifest, no partial file; a rerun does the rest."""
    import os
    import signal

    n = 16      # enough that the rest cannot all finish between the first progress line and the signal
    for k in range(n):
        testing.write_series(tmp_path / "in" / f"s{k}", shape=(40, 128, 128), series_number=k + 1, seed=k)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nname = "vols"\n[[output]]\nkind = "volume"\nname = "stored"\nformat = "nifti"\n'
                      '[[output]]\nkind = "mip"\nname = "mip"\nplane = "coronal"\n')
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "gpukit.cli", "batch", str(tmp_path / "in"), str(out), "--recipe",
                          str(recipe), "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=_sigint_default)
    manifest = out / "manifest.jsonl"
    seen = []
    for line in p.stderr:      # the progress lines; "1/16 series" comes once the first series is in the manifest
        seen.append(line)
        if f" 1/{n} series" in line:
            break
    assert p.poll() is None, "the batch ended before it could be interrupted: " + "".join(seen)
    os.kill(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    lines = manifest.read_text().splitlines()
    recs = [json.loads(line) for line in lines]              # every line is whole
    done = {r["key"] for r in recs if r["status"] == "ok"}
    assert 1 <= len(done) < n
    assert not list(out.rglob(".gpukit-tmp-*"))
    for r in recs:
        if r["status"] == "ok":
            for o in r["outputs"]:
                assert (out / o["path"]).stat().st_size == o["bytes"]
    mtimes = {q: q.stat().st_mtime_ns for q in out.rglob("*") if q.is_file() and q.name != "manifest.jsonl"
              and any(q.is_relative_to(out / r["out_dir"]) for r in recs if r["status"] == "ok")}
    res = run_batch(tmp_path / "in", out, load_recipe(recipe), n_workers=1, progress=False)
    assert res.skipped_done == len(done) and len(res.records) == n - len(done)
    assert sum(r.get("status") == "ok" for r in Manifest(out).records.values()) == n
    assert {q: q.stat().st_mtime_ns for q in mtimes} == mtimes          # nothing done was redone


def _have_device() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def test_cpu_batches_start_no_gpu_workers():
    from gpukit.batch.runner import gpu_devices

    assert gpu_devices("numba") == 0 and gpu_devices("numpy") == 0
    if not _have_device():
        assert gpu_devices() == 0 and gpu_devices("cupy") == 0     # an unavailable GPU backend: no GPU workers


@pytest.mark.gpu
@pytest.mark.skipif(not _have_device(), reason="needs a CUDA device")
def test_gpu_batch_runs_one_worker_per_device(tmp_path):
    import cupy

    for k in range(3):
        testing.write_series(tmp_path / "in" / f"s{k}", shape=(12, 48, 40), series_number=k + 1, seed=k)
    res = run_batch(tmp_path / "in", tmp_path / "out", parse_recipe({"output": [{"kind": "mip", "name": "mip"}]}),
                    backend="cupy", progress=False)
    assert res.counts.get("ok") == 3
    n = cupy.cuda.runtime.getDeviceCount()
    assert {r["device"] for r in res.records} <= set(range(n)) and all(r["backend"] == "cupy" for r in res.records)


def test_outputs_are_written_in_background_threads_in_recipe_order(tmp_path, monkeypatch):
    """PNGs are encoded and written off the computing thread; the returned paths keep the recipe's order
    whatever order the writes end in; a computation failing mid-series raises only after every write started
    before it has ended, and ``written`` lists exactly the files on disk (so the runner can remove them)."""
    import threading
    import time as _time

    from gpukit.batch import outputs, writers

    stored = np.clip(np.rint(testing.phantom((24, 48, 48), seed=3) + 1024), 0, 4095).astype(np.int16)
    testing.write_series(tmp_path / "in", data=stored, intercept=-1024.0, bits_stored=12, signed=False)
    vol = gpukit.load(tmp_path / "in")
    recipe = parse_recipe({"output": [
        {"name": "first", "kind": "reslice", "plane": "axial"},
        {"name": "second", "kind": "mip", "plane": "coronal"},
        {"name": "third", "kind": "reslice", "plane": "sagittal"},
    ]}, "<test>")
    threads, real = [], writers.write_png

    def slow_first(path, image, root=None):          # the first write ends last
        threads.append(threading.current_thread().name)
        if "first" in os.path.basename(path):
            _time.sleep(0.3)
        return real(path, image, root=root)

    monkeypatch.setattr(writers, "write_png", slow_first)
    written: list = []
    paths, compute_s, write_s = outputs.produce(vol, recipe, str(tmp_path / "out"), backend="numpy",
                                                root=str(tmp_path / "out"), written=written)
    assert [os.path.basename(p) for p in paths] == ["first.png", "second.png", "third.png"]
    assert os.path.basename(written[-1]) == "first.png" and sorted(written) == sorted(paths)
    assert threads and all(t.startswith("gpukit-write") for t in threads), threads
    assert write_s >= 0.3 and all(os.path.isfile(p) for p in paths)

    calls = {"n": 0}
    real_reslice = gpukit.reslice

    def fails_second_time(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("compute failed")
        return real_reslice(*a, **k)

    monkeypatch.setattr(gpukit, "reslice", fails_second_time)
    written = []
    with pytest.raises(RuntimeError, match="compute failed"):
        outputs.produce(vol, recipe, str(tmp_path / "out2"), backend="numpy", root=str(tmp_path / "out2"),
                        written=written)
    on_disk = sorted(str(p) for p in (tmp_path / "out2").iterdir())
    assert sorted(os.path.basename(p) for p in written) == ["first.png", "second.png"]
    assert sorted(written) == on_disk            # the slow first write had ended before the error came out
