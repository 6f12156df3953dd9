"""`gpukit batch URL OUT`: a batch whose series come from a real Orthanc over DICOMweb, on a real Dask cluster.

Each worker fetches its own series (credentials from its own environment, as a real deployment sets them);
requests are counted by a real proxy between the workers and Orthanc (workers are other processes: an httpx
hook in this one would see nothing). The outputs are compared with the folder batch of the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

import gpukit
from gpukit.batch import Manifest, parse_recipe, run_batch

from conftest import data_path, require_backend
from test_dicomweb import FaultProxy
from test_stow import delete_series

pytest.importorskip("httpx")

RECIPE = {"recipe": {"name": "web"},
          "output": [{"kind": "volume", "name": "stored", "format": "nifti"},
                     {"kind": "volume", "name": "hu", "format": "npy", "hu": True},
                     {"kind": "mip", "name": "cor", "plane": "coronal", "format": "png"}]}
RECIPE_TOML = """[recipe]
name = "web"

[[output]]
kind = "volume"
name = "stored"
format = "nifti"

[[output]]
kind = "volume"
name = "hu"
format = "npy"
hu = true

[[output]]
kind = "mip"
name = "cor"
plane = "coronal"
format = "png"
"""


def _env(monkeypatch, srv, cache):
    monkeypatch.setenv("GPUKIT_DICOMWEB_USER", srv.user)
    monkeypatch.setenv("GPUKIT_DICOMWEB_PASSWORD", srv.password)
    monkeypatch.setenv("GPUKIT_DICOMWEB_CACHE", str(cache))
    monkeypatch.delenv("GPUKIT_DICOMWEB_TOKEN", raising=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("manifest.jsonl", ".gpukit-runs")}


def _instances_asked(proxy) -> int:
    return sum(n for path, n in proxy.asked.items() if "/instances/" in path)


@pytest.fixture(scope="module")
def disk_batch(tmp_path_factory):
    """The folder batch of the same series (the reference)."""
    out = tmp_path_factory.mktemp("disk-out")
    res = run_batch(data_path("enh_mr_siemens_xa30"), out, parse_recipe(RECIPE), n_workers=1, progress=False)
    assert res.counts.get("ok") == 3, res.counts
    return out


def test_batch_from_url_equals_folder_batch_and_resumes_without_downloads(orthanc, disk_batch, tmp_path,
                                                                          monkeypatch):
    disk = gpukit.scan(data_path("enh_mr_siemens_xa30"))
    study = str(disk.volumes[0].frames[0].header.get("StudyInstanceUID"))
    victim_series = [s for s in disk.volumes if s.id.endswith("#2")][0]
    victim = str(pydicom.dcmread(victim_series.files[0], stop_before_pixels=True).SOPInstanceUID)
    state = {"fault": "short"}

    def rule(path, n):        # the one instance of one series arrives damaged (well framed, file cut short)
        return state["fault"] if path.endswith("/instances/" + victim) else None

    out = tmp_path / "web-out"
    with FaultProxy(orthanc.dicomweb_url, rule) as proxy:
        url = f"{proxy.url}/studies/{study}"
        _env(monkeypatch, orthanc, tmp_path / "cache1")
        res = run_batch(url, out, parse_recipe(RECIPE), n_workers=1, progress=False, query={"modality": "MR"})
        # one bad series is one failed record with the typed error; the others are done
        assert res.counts == {"ok": 2, "failed": 1}, res.counts
        m = Manifest(out)
        bad = m.records[victim_series.id]
        assert bad["error"] == "IncompleteSeriesError" and bad["kind"] == "source" and victim in bad["message"]
        assert not (out / bad["out_dir"]).exists()                       # nothing of it written
        for key, rec in m.records.items():
            assert rec["source_url"].startswith(proxy.url + "/studies/" + study + "/series/")
            assert rec["source_url"].split("#")[0].endswith(key.split("#")[0])
            d = [s for s in disk.volumes if s.id == key][0]
            assert rec["instance_uids"] == [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                                            for f in d.files]
        text = Path(m.path).read_text()
        assert orthanc.password not in text and "Authorization" not in text
        assert _instances_asked(proxy) >= 3

        # the rerun (CLI, --retry-failed, a fresh cache: any download would show) asks for the failed series'
        # instance only: the finished series are not downloaded again
        state["fault"] = None
        proxy.asked.clear()
        _env(monkeypatch, orthanc, tmp_path / "cache2")
        (tmp_path / "r.toml").write_text(RECIPE_TOML)
        from gpukit.cli import main

        assert main(["batch", url, str(out), "--recipe", str(tmp_path / "r.toml"), "--workers", "1",
                     "--retry-failed", "--json", "--modality", "MR"]) == 0
        asked = {p for p in proxy.asked if "/instances/" in p}
        assert asked == {p for p in proxy.asked if p.endswith("/instances/" + victim)} and len(asked) == 1
        assert _instances_asked(proxy) == 1
        # and a third run asks for no instance at all
        proxy.asked.clear()
        res3 = run_batch(url, out, parse_recipe(RECIPE), n_workers=1, progress=False, query={"modality": "MR"})
        assert res3.skipped_done == 3 and res3.records == [] and _instances_asked(proxy) == 0
        assert sum(proxy.asked.values()) > 0                              # the scan itself did ask (metadata)

    # the same output files as the folder batch, byte for byte (the writers are deterministic: NIfTI's gzip
    # header carries no time stamp)
    web_files, disk_files = _files(out), _files(disk_batch)
    assert sorted(web_files) == sorted(disk_files) and len(web_files) == 9
    for rel in web_files:
        assert web_files[rel] == disk_files[rel], rel
    assert not [r for r in web_files if ".tmp" in r]


@pytest.mark.slow
def test_server_stopped_mid_batch_then_rerun(tmp_path, monkeypatch):
    from orthanc_server import OrthancServer, find_orthanc

    if find_orthanc()[2]:
        pytest.skip(find_orthanc()[2])
    folders = [data_path("enh_mr_siemens_xa30"), data_path("ct_philips_tilt", "In", "Philips", "S21610", "S2010")]
    out = tmp_path / "out"
    recipe = parse_recipe(RECIPE)
    with OrthancServer() as srv:
        for f in folders:
            srv.upload_folder(f)
        _env(monkeypatch, srv, tmp_path / "cache")
        seen = []

        def stop_after_first(rec):          # the server goes away as soon as the first series is done
            seen.append(rec["key"])
            if len(seen) == 1:
                srv.stop()

        res = run_batch(srv.dicomweb_url, out, recipe, n_workers=1, threads_per_worker=1, progress=False,
                        on_result=stop_after_first)
    m = Manifest(out)
    assert len(m.records) == 4 == len(res.records)                      # every series has its record
    failed = [r for r in m.records.values() if r["status"] == "failed"]
    assert failed and res.counts == {"ok": 4 - len(failed), "failed": len(failed)}
    for r in failed:
        assert r["kind"] == "source" and r["error"] in ("IncompleteSeriesError", "DicomWebError"), r
        assert "could not be retrieved" in r["message"] or "connection" in r["message"]
        assert not (out / r["out_dir"]).exists()                         # nothing partial in OUT
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    done = {k for k, r in m.records.items() if r["status"] == "ok"}

    # the server back (a new process, the same series, another port): the rerun finishes the rest only
    with OrthancServer() as srv2:
        for f in folders:
            srv2.upload_folder(f)
        _env(monkeypatch, srv2, tmp_path / "cache")
        res2 = run_batch(srv2.dicomweb_url, out, recipe, n_workers=1, progress=False, retry_failed=True)
    assert res2.skipped_done == len(done) and {r["key"] for r in res2.records} == {r["key"] for r in failed}
    assert res2.counts == {"ok": 4}
    # the volume outputs equal a load from disk
    for key, rec in Manifest(out).records.items():
        npy = [o for o in rec["outputs"] if o["path"].endswith("hu.npy")][0]
        assert np.load(out / npy["path"]).shape == tuple(rec["shape"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "cuda-host"])
def test_batch_stores_derived_series_back(orthanc, tmp_path, monkeypatch, backend):
    """A folder batch with ``stow``: each series' derived volume and MIP are stored on Orthanc, read back over
    DICOMweb and compared with the volume that was stored; also on the device stand-in (the derivation runs on
    the device and only what is stored comes back)."""
    require_backend(backend)
    _env(monkeypatch, orthanc, tmp_path / "cache")
    folder = data_path("enh_mr_siemens_xa30", "In", "5_anat-T1w_acq-tfl")
    recipe = parse_recipe({"recipe": {"name": "r"}, "output": [{"kind": "volume", "name": "v", "format": "npy"}]})
    try:
        res = run_batch(folder, tmp_path / "out", recipe, n_workers=1, progress=False, stow=orthanc.dicomweb_url,
                        backend=backend)
        assert res.counts == {"ok": 1}, res.records
        assert res.records[0]["backend"] == backend
        _check_stored(orthanc, folder, res.records[0])
    finally:           # the session's Orthanc holds the shared series only again (other tests count them)
        recs = Manifest(tmp_path / "out").records.values() if (tmp_path / "out").exists() else []
        delete_series(orthanc, [s["series_uid"] for r in recs for s in r.get("stored", {}).get("series", [])])


def _check_stored(orthanc, folder, rec):
    stored = rec["stored"]
    assert stored["url"] == orthanc.dicomweb_url and len(stored["series"]) == 2
    src = gpukit.load(gpukit.scan(folder).volumes[0])
    study = src.meta["study_uid"]
    derived, sc = stored["series"]
    back = gpukit.load(f"{orthanc.dicomweb_url}/studies/{study}/series/{derived['series_uid']}", cache=False)
    assert derived["instances"] == back.shape[0] and back.meta["modality"] == "MR"
    want = gpukit.regularize(src) if derived["what"] != "as loaded" else src
    np.testing.assert_allclose(back.affine, want.affine, atol=1e-4, rtol=0)
    if derived["what"] == "as loaded":
        np.testing.assert_array_equal(np.asarray(back.hu()), np.asarray(want.hu()))
    assert back.meta["series_uid"] not in (src.meta["series_uid"],) and back.meta["study_uid"] == study
    found = gpukit.scan(orthanc.dicomweb_url, series=sc["series_uid"])
    assert len(found) == 1 and found[0].modality == "OT"
    # references to the source, from the stored instance itself
    h = found[0].frames[0].header
    c = gpukit.dicomweb.client_for_url(orthanc.dicomweb_url)
    try:
        raw = c.retrieve_instance(study, sc["series_uid"], h.sop_uid)
    finally:
        c.close()
    import io

    ds = pydicom.dcmread(io.BytesIO(raw))
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.meta["series_uid"]
    assert ds.pixel_array.std() > 0
    assert json.dumps(rec).find(orthanc.password) < 0


@pytest.mark.slow
def test_benchmark_batch_rows_quick(orthanc, monkeypatch):
    """The batch rows of the DICOMweb benchmark run (at the quick size; the full run adds them itself)."""
    import importlib

    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT))
    bench = importlib.import_module("benchmarks.bench_dicomweb")
    rows = bench.batch_rows(data_path("ct_philips_tilt"), 201, orthanc.dicomweb_url, (orthanc.user, orthanc.password),
                            28.3, "load")
    assert [r["impl"].split(":")[0] for r in rows] == ["batch", "batch"] and "URL" in rows[1]["impl"]
    # reported, not judged (speed is the benchmark's business): every row has its timing fields
    assert all({"series_per_s", "median_s", "series_s"} <= set(r) for r in rows)
