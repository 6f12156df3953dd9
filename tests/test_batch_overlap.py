"""Series overlapped inside a batch worker (gpukit.batch.runner, gpukit.batch.outputs): two series in flight per
worker, one computing at a time, the long writes computed first, and none of it changing what is written.

Real Dask clusters and real DICOM files; correctness only (no timing is asserted)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

import gpukit
from gpukit import testing
from gpukit.batch import Manifest, outputs, parse_recipe, run_batch, writers

RECIPE = {"recipe": {"name": "overlap"},
          "output": [{"kind": "reslice", "name": "axial", "plane": "axial"},
                     {"kind": "volume", "name": "stored", "format": "nifti"},
                     {"kind": "mip", "name": "mip", "plane": "coronal"},
                     {"kind": "resample", "name": "iso", "spacing_mm": 2.0, "format": "npy"}]}


def _inputs(root: Path, n: int = 5) -> list:
    series = []
    for k in range(n):
        stored = np.clip(np.rint(testing.phantom((20, 40, 36), seed=k) + 1024), 0, 4095).astype(np.int16)
        series.append(testing.write_series(root / f"s{k}", data=stored, intercept=-1024.0, bits_stored=12,
                                           signed=False, series_number=k + 1, seed=k,
                                           tilt_deg=6.0 if k == 2 else 0.0))
    # a bad series in the middle of the queue: series 1 also holds a truncated copy of one of its files
    testing.write_truncated(series[1].files[0], root / "broken" / "cut.dcm", keep_fraction=0.4)
    return series


def _digests(out: Path) -> dict:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in ("manifest.jsonl", ".gpukit-runs")}


def test_overlapped_workers_write_exactly_what_one_series_at_a_time_writes(tmp_path):
    """Two series in flight per worker (the default) against one at a time: the same files, byte for byte, the
    same manifest outcomes and output lists (in recipe order), the bad series failing alone, nothing partial."""
    series = _inputs(tmp_path / "in")
    recipe = parse_recipe(RECIPE)
    serial = run_batch(tmp_path / "in", tmp_path / "serial", recipe, n_workers=1, threads_per_worker=1,
                       progress=False)
    over = run_batch(tmp_path / "in", tmp_path / "over", recipe, n_workers=1, progress=False)
    for res in (serial, over):
        assert res.counts.get("ok") == len(series) - 1 and res.counts.get("failed") == 1, res.counts
        bad = [r for r in res.records if r["status"] == "failed"]
        assert "cut.dcm" in bad[0]["message"] and not (Path(res.output_root) / bad[0]["out_dir"]).exists()
        assert not [p for p in Path(res.output_root).rglob("*") if p.name.startswith((".tmp-", ".gpukit-tmp-"))]
    ref = _digests(tmp_path / "serial")
    assert len(ref) == 4 * (len(series) - 1)
    assert _digests(tmp_path / "over") == ref
    m_ser, m_over = Manifest(tmp_path / "serial").records, Manifest(tmp_path / "over").records
    assert m_ser.keys() == m_over.keys()
    for key, rec in m_ser.items():
        assert m_over[key]["status"] == rec["status"]
        if rec["status"] == "ok":
            names = [os.path.basename(o["path"]) for o in m_over[key]["outputs"]]
            assert names == ["axial.png", "stored.nii.gz", "mip.png", "iso.npy"]       # the recipe's order
            assert m_over[key]["outputs"] == rec["outputs"]
    # one worker process (two Dask threads) ran every series
    assert len({r["worker_pid"] for r in over.records if r.get("status") == "ok"}) == 1
    # a rerun finds everything done and writes nothing
    again = run_batch(tmp_path / "in", tmp_path / "over", recipe, n_workers=1, progress=False)
    assert again.skipped_done == len(series) - 1 and not again.records
    assert _digests(tmp_path / "over") == ref


def test_compute_lock_keeps_two_series_from_computing_at_once_while_writes_go_on(tmp_path, monkeypatch):
    """Two threads produce two series with one lock: their kernels never run at the same time, and the second
    series computes (and finishes) while the first one's writes are still held back: writes run outside the
    lock (were they inside it, the second series could not start until they end, and this test would fail)."""
    stored = np.clip(np.rint(testing.phantom((16, 40, 40), seed=1) + 1024), 0, 4095).astype(np.int16)
    testing.write_series(tmp_path / "in", data=stored, intercept=-1024.0, bits_stored=12, signed=False)
    vol = gpukit.load(tmp_path / "in")
    recipe = parse_recipe({"output": [{"kind": "reslice", "name": "a", "plane": "axial"},
                                      {"kind": "mip", "name": "b", "plane": "coronal"},
                                      {"kind": "reslice", "name": "c", "plane": "sagittal"}]})
    active, peak, count_lock = [0], [0], threading.Lock()
    first_started, release = threading.Event(), threading.Event()

    def counted(fn):
        def wrapper(*a, **k):
            if threading.current_thread().name == "s0":
                first_started.set()
            with count_lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            try:
                return fn(*a, **k)
            finally:
                with count_lock:
                    active[0] -= 1
        return wrapper

    real_png = writers.write_png

    def held_png(path, image, root=None):       # the first series' writes wait until the second one is done
        if f"{os.sep}s0{os.sep}" in str(path):
            release.wait(120)
        return real_png(path, image, root=root)

    monkeypatch.setattr(gpukit, "reslice", counted(gpukit.reslice))
    monkeypatch.setattr(gpukit, "project", counted(gpukit.project))
    monkeypatch.setattr(writers, "write_png", held_png)
    lock = threading.Lock()
    results, errors = {}, []

    def run(name):
        try:
            out = str(tmp_path / "out" / name)
            results[name] = outputs.produce(vol, recipe, out, backend="numpy", root=str(tmp_path / "out"),
                                            compute_lock=lock)
        except BaseException as exc:      # surfaced below
            errors.append(exc)

    t0 = threading.Thread(target=run, args=("s0",), name="s0")
    t1 = threading.Thread(target=run, args=("s1",), name="s1")
    t0.start()
    try:
        assert first_started.wait(120)
        t1.start()
        t1.join(60)
        s1_done_first = "s1" in results and "s0" not in results
    finally:
        release.set()
        t0.join(120)
        t1.join(120)
    assert not errors, errors
    assert s1_done_first, "the second series could not finish while the first one's writes were pending"
    assert peak[0] == 1, "two series computed at the same time"
    for name in ("s0", "s1"):
        paths = results[name][0]
        assert [os.path.basename(p) for p in paths] == ["a.png", "b.png", "c.png"]
        assert all(os.path.isfile(p) for p in paths)
    ref = {os.path.basename(p): Path(p).read_bytes() for p in results["s0"][0]}
    assert {os.path.basename(p): Path(p).read_bytes() for p in results["s1"][0]} == ref


def test_long_writes_are_computed_first_and_paths_stay_in_recipe_order(tmp_path, monkeypatch):
    """The volume outputs are computed (and their writes started) before the 2-D outputs listed above them; the
    returned paths keep the recipe's order, ``written`` names the same files, and every file is byte-identical
    to the one written when the outputs are computed in the recipe's own order."""
    stored = np.clip(np.rint(testing.phantom((18, 40, 40), seed=2) + 1024), 0, 4095).astype(np.int16)
    testing.write_series(tmp_path / "in", data=stored, intercept=-1024.0, bits_stored=12, signed=False)
    vol = gpukit.load(tmp_path / "in")
    recipe = parse_recipe(RECIPE)
    assert outputs.compute_order(recipe) == [1, 3, 0, 2]
    started = []
    for name in ("write_png", "write_nifti", "write_npy"):
        real = getattr(writers, name)

        def rec(path, *a, _real=real, **k):
            started.append(os.path.basename(path))
            return _real(path, *a, **k)

        monkeypatch.setattr(writers, name, rec)
    written: list = []
    paths, _, _ = outputs.produce(vol, recipe, str(tmp_path / "out"), backend="numba", root=str(tmp_path / "out"),
                                  written=written)
    names = ["axial.png", "stored.nii.gz", "mip.png", "iso.npy"]
    assert [os.path.basename(p) for p in paths] == names
    assert sorted(written) == sorted(paths)
    assert set(started[:2]) == {"stored.nii.gz", "iso.npy"}, started
    monkeypatch.setattr(outputs, "compute_order", lambda r: list(range(len(r.outputs))))
    paths2, _, _ = outputs.produce(vol, recipe, str(tmp_path / "out2"), backend="numba",
                                   root=str(tmp_path / "out2"))
    assert [os.path.basename(p) for p in paths2] == names
    for p, q in zip(paths, paths2):
        assert Path(p).read_bytes() == Path(q).read_bytes(), p
