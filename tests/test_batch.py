"""Batch runs on a real Dask cluster: outputs, manifest, reruns and faults.

Each test starts real processes: an in-process LocalCluster, or a `dask
scheduler` and `dask worker` processes on 127.0.0.1. Bad input is real bad
files; the worker kill is a real SIGKILL; the full disk is a real 64 KiB tmpfs
mounted on a series' output folder (skipped where mounting is not allowed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import gpukit
from gpukit import testing
from gpukit.batch import Manifest, RecipeError, load_recipe, parse_recipe, run_batch
from gpukit.batch.runner import series_folder

from conftest import can_mount_tmpfs

VOLUME_RECIPE = {"recipe": {"name": "volumes"},
                 "output": [{"kind": "volume", "name": "stored", "format": "nifti"},
                            {"kind": "volume", "name": "hu", "format": "npy", "hu": True}]}


def _make_input(root: Path, n: int = 4, shape=(12, 48, 40)) -> list:
    series = [testing.write_series(root / f"series{k}", shape=shape, series_number=k + 1, seed=k,
                                   tilt_deg=8.0 if k == 1 else 0.0) for k in range(n)]
    testing.write_not_dicom(root / "notes.txt")
    testing.write_truncated(series[0].files[0], root / "broken" / "cut.dcm", keep_fraction=0.3)
    testing.write_rgb_secondary_capture(root / "screens" / "shot.dcm")
    return series


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _check_outputs(out: Path, series: list, manifest: Manifest) -> None:
    """Every good series has its outputs exactly once, re-read and checked against the truth."""
    by_uid = {s.series_uid: s for s in series}
    for key, rec in manifest.records.items():
        if rec.get("status") != "ok":
            continue
        s = by_uid[key]
        paths = sorted(out / o["path"] for o in rec["outputs"])
        assert [p.name for p in paths] == ["hu.npy", "stored.nii.gz"]
        img = nib.load(paths[1])
        np.testing.assert_array_equal(np.asarray(img.dataobj), s.rescaled().T)   # nibabel applies scl_*
        ras = np.diag([-1, -1, 1, 1]) @ s.affine
        np.testing.assert_allclose(img.affine, ras, atol=1e-4)
        np.testing.assert_array_equal(np.load(paths[0]), s.rescaled())
    names = [p.name for p in _all_files(out)]
    assert not [n for n in names if n.startswith((".tmp-", ".gpukit-tmp-"))], "a partial (temporary) file was left behind"
    for name in ("hu.npy", "stored.nii.gz"):
        assert names.count(name) == sum(r.get("status") == "ok" for r in manifest.records.values())


def test_recipe_validation(tmp_path):
    r = load_recipe(None)
    assert {o.kind for o in r.outputs} >= {"slab_mips", "reslice", "rotating_mip", "resample"}
    bad = [
        ({"output": [{"kind": "hologram"}]}, "hologram"),
        ({"output": [{"kind": "reslice", "plane": "diagonal"}]}, "plane"),
        ({"output": [{"kind": "reslice", "colour": "red"}]}, "colour"),
        ({"output": [{"kind": "slab_mips", "thickness_mm": -1}]}, "thickness_mm"),
        ({"output": [{"kind": "reslice", "window": [40]}]}, "window"),
        ({"output": [{"kind": "volume", "format": "png"}]}, "format"),
        ({"output": [{"kind": "volume", "name": "a"}, {"kind": "volume", "name": "a"}]}, "twice"),
        ({"output": []}, "no [[output]]"),
        ({"recipe": {"backend": "quantum"}, "output": [{"kind": "volume"}]}, "quantum"),
    ]
    for data, word in bad:
        with pytest.raises(RecipeError, match=re.escape(word)):
            parse_recipe(data, "test.toml")
    p = tmp_path / "r.toml"
    p.write_text("[[output]]\nkind = 'volume'\nname = 'x'\nformat = 'npy'\n[[output]\n")
    with pytest.raises(RecipeError, match="TOML") as ei:
        load_recipe(p)
    assert str(p) in str(ei.value)


def test_local_cluster_batch_and_rerun(tmp_path):
    series = _make_input(tmp_path / "in")
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in _all_files(tmp_path / "in")}
    res = run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), n_workers=2, progress=False)
    m = Manifest(out)
    # series 0 holds a truncated copy of one of its files: it fails naming that file; the rest go on
    assert res.counts == {"ok": 3, "failed": 1, "not_volume": 1, "skipped_file": 1}, res.counts
    bad = m.records[series[0].series_uid]
    assert bad["error"] == "CorruptDicomError" and "cut.dcm" in bad["message"] and bad["kind"] == "bad input"
    statuses = list(m.records.values())
    assert any(r["status"] == "not_volume" and "colour" in r["message"] for r in statuses)
    assert any(r["status"] == "skipped_file" and "notes.txt" in r["key"] and "not a DICOM" in r["message"]
               for r in statuses)
    for s in series[1:]:
        rec = m.records[s.series_uid]
        assert rec["status"] == "ok" and set(rec["timings_s"]) >= {"read", "decode", "compute", "write", "total"}
        assert sorted(rec["source_files"]) == sorted(map(str, s.files))
    _check_outputs(out, series, m)
    # a rerun recomputes nothing
    mtimes = {p: p.stat().st_mtime_ns for p in _all_files(out) if p.name != "manifest.jsonl"}
    res2 = run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), n_workers=1, progress=False)
    assert res2.skipped_done == 3 and res2.records == []            # the failed one waits for retry_failed
    assert {p: p.stat().st_mtime_ns for p in _all_files(out) if p.name != "manifest.jsonl"} == mtimes
    # a damaged output is noticed (checksum) and only that series is redone
    victim = out / m.records[series[2].series_uid]["outputs"][0]["path"]
    victim.write_bytes(b"garbage")
    res3 = run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), n_workers=1, progress=False)
    assert res3.skipped_done == 2 and [r["key"] for r in res3.records] == [series[2].series_uid]
    _check_outputs(out, series, Manifest(out))
    assert {p: p.read_bytes() for p in _all_files(tmp_path / "in")} == before     # inputs untouched


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def external_cluster(tmp_path):
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1, stopped after the test."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask_cli + ["--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0",
                                          "--no-show"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    for n in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
                                       "--nworkers", "1", "--name", f"w{n}", "--local-directory", str(tmp_path / f"w{n}"),
                                       "--dashboard-address", ":0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
    from dask.distributed import Client

    with Client(addr, timeout="60s") as c:
        c.wait_for_workers(2, timeout=120)
    yield addr
    for p in procs[::-1]:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def test_external_scheduler_and_killed_worker(tmp_path, external_cluster):
    series = _make_input(tmp_path / "in", n=6, shape=(24, 96, 96))
    (tmp_path / "in" / "broken" / "cut.dcm").unlink()
    out = tmp_path / "out"
    killed = []

    def kill_first_worker(rec):
        if not killed:
            os.kill(rec["worker_pid"], signal.SIGKILL)   # the nanny restarts it; its tasks are rescheduled
            killed.append(rec["worker_pid"])

    res = run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), scheduler=external_cluster,
                    progress=False, on_result=kill_first_worker)
    assert killed
    m = Manifest(out)
    assert res.counts.get("ok") == 6, res.counts
    assert len({r["worker_pid"] for r in m.records.values() if r.get("status") == "ok"}) >= 2
    _check_outputs(out, series, m)


@pytest.mark.skipif(not can_mount_tmpfs(),
                    reason="needs permission to mount a tmpfs (root on Linux) to make a real full disk")
def test_full_disk_then_rerun(tmp_path):
    series = _make_input(tmp_path / "in", n=3, shape=(24, 96, 96))
    (tmp_path / "in" / "broken" / "cut.dcm").unlink()
    out = tmp_path / "out"
    found = gpukit.scan(tmp_path / "in")
    victim = next(s for s in found.volumes if s.uid == series[1].series_uid)
    full = out / series_folder(victim.to_dict())
    full.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        res = run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), n_workers=2, progress=False)
        m = Manifest(out)
        rec = m.records[series[1].series_uid]
        assert rec["status"] == "failed" and rec["kind"] == "output" and "space" in rec["message"].lower()
        assert res.counts["ok"] == 2
        assert list(full.iterdir()) == []                      # nothing partial on the full disk
        _check_outputs(out, series, m)
    finally:
        subprocess.run(["umount", str(full)], check=True)
    done = {k: r["outputs"] for k, r in m.records.items() if r.get("status") == "ok"}
    res = run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), n_workers=1, progress=False)
    assert res.records == []                                   # failed ones wait for --retry-failed
    res = run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), n_workers=1, progress=False,
                    retry_failed=True)
    assert [r["key"] for r in res.records] == [series[1].series_uid] and res.counts["ok"] == 3
    m2 = Manifest(out)
    assert {k: m2.records[k]["outputs"] for k in done} == done     # the good ones were not recomputed
    _check_outputs(out, series, m2)


def test_torn_manifest_line_is_ignored(tmp_path):
    series = _make_input(tmp_path / "in", n=2)
    (tmp_path / "in" / "broken" / "cut.dcm").unlink()
    out = tmp_path / "out"
    run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), n_workers=1, progress=False)
    mp = out / "manifest.jsonl"
    lines = mp.read_text().splitlines(keepends=True)
    last_ok = max(i for i, l in enumerate(lines) if '"status": "ok"' in l)
    torn = lines[last_ok][: len(lines[last_ok]) // 2]
    mp.write_text("".join(lines[:last_ok] + lines[last_ok + 1:]) + torn)   # a crash mid-line
    m = Manifest(out)
    assert m.torn_lines == 1
    res = run_batch(tmp_path / "in", out, parse_recipe(VOLUME_RECIPE), n_workers=1, progress=False)
    assert len(res.records) == 1 and res.counts["ok"] == 2
    json.loads(mp.read_text().splitlines()[-1])
    _check_outputs(out, series, Manifest(out))


def test_a_validated_recipe_round_trips_for_the_workers():
    """The dict sent to each worker parses to the same recipe (defaults such as window=None included)."""
    r = load_recipe(None)
    r2 = parse_recipe(r.to_dict(), "<again>")
    assert [o.to_dict() for o in r2.outputs] == [o.to_dict() for o in r.outputs]
    one = parse_recipe({"output": [{"kind": "mip", "plane": "coronal"}]})
    assert parse_recipe(one.to_dict()).outputs[0].params == one.outputs[0].params
