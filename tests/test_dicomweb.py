"""DICOMweb against a real Orthanc (Debian's orthanc + orthanc-dicomweb, started by the ``orthanc`` fixture).

No mock of the server: every request reaches Orthanc. Faults are made by a small real HTTP proxy on 127.0.0.1
(in this process) that forwards to Orthanc and answers 503 or cuts bodies on the requests it is told to, and by
stopping a second Orthanc in the middle of a series.
"""

from __future__ import annotations

import functools
import http.client
import pickle
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

import gpukit
from gpukit.dicom.scan import ScanResult
from gpukit.dicomweb import Credentials, DicomWebClient, InstanceCache, instance_uids, series_url
from gpukit.errors import DicomWebAuthError, GpukitError, IncompleteSeriesError, TruncatedResponseError

from conftest import ORTHANC_SERIES, data_path
from orthanc_server import LocalProxy

pytest.importorskip("httpx")


# -- helpers -----------------------------------------------------------------------------------------------------------
def _client(srv, url=None, **kw) -> DicomWebClient:
    kw.setdefault("auth", (srv.user, srv.password))
    return DicomWebClient(url or srv.dicomweb_url, **kw)


class RequestLog:
    """An httpx request hook: counts what the client sends, by kind."""

    def __init__(self):
        self.seen: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, request):
        path = request.url.path
        kind = "instance" if "/instances/" in path else "metadata" if path.endswith("/metadata") else "qido"
        with self._lock:
            self.seen[kind] += 1


@functools.lru_cache(maxsize=None)
def _sop(path: str) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


@pytest.fixture(scope="module")
def web_scan(orthanc):
    """The DICOMweb scan of the whole server (once per module: it reads every series' metadata)."""
    with _client(orthanc) as c:
        return gpukit.scan(orthanc.dicomweb_url, client=c)


def _disk_and_web(web, name):
    """(folder scan, the DICOMweb scan restricted to the same series UIDs)."""
    disk = gpukit.scan(data_path(name))
    uids = {s.uid for s in disk}
    return disk, ScanResult([s for s in web if s.uid in uids],
                                              [k for k in web.skipped if any(u in k.path for u in uids)])


def _match(disk_series, web_result):
    """The web series holding exactly the same instances as ``disk_series``."""
    want = {_sop(p) for p in disk_series.files}
    hits = [w for w in web_result if w.uid == disk_series.uid and set(instance_uids(w)) == want]
    assert len(hits) == 1, f"{disk_series.id}: {len(hits)} matching web series"
    return hits[0]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return InstanceCache(tmp_path_factory.mktemp("dicomweb-cache"))


# -- the series table --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ORTHANC_SERIES)
def test_scan_table_equals_folder_scan(orthanc, web_scan, name):
    disk, web = _disk_and_web(web_scan, name)
    assert len(web) == len(disk) and len(disk) > 0
    for d in disk:
        w = _match(d, web)
        dd, wd = d.to_dict(), w.to_dict()
        if "split by source file" not in d.split_reason:
            # the part numbers follow file names on disk, (InstanceNumber, SOP UID) over DICOMweb: only the parts
            # split by source file may be numbered differently
            assert (wd["id"], wd["part"]) == (dd["id"], dd["part"])
        for k in ("id", "part"):
            dd.pop(k), wd.pop(k)
        assert wd == dd, d.id
        assert all(f.path.startswith(orthanc.dicomweb_url + "/studies/") for f in w.frames)
    # what the folder scan skipped is exactly what Orthanc refused to store (not DICOM, DICOMDIR); nothing of what
    # it stored is skipped over DICOMweb
    assert {s.path for s in disk.skipped} == set(orthanc.uploads[name]["refused"])
    assert web.skipped == []


def test_scan_filters(orthanc):
    with _client(orthanc) as c:
        ct = gpukit.scan(orthanc.dicomweb_url, modality="CT", client=c)
        mr = gpukit.scan(orthanc.dicomweb_url + "?Modality=MR", client=c)
        assert {s.modality for s in ct} == {"CT"} and {s.modality for s in mr} == {"MR"}
        tilt = [s for s in ct if s.series_number == 201][0]
        study = tilt.frames[0].header.study_uid
        in_study = gpukit.scan(orthanc.dicomweb_url, study=study, client=c)
        assert {s.series_number for s in in_study} == {100, 201, 301, 401}
        # a StudyDate range, open-ended, as a pair; and a range that holds nothing
        date = str(tilt.frames[0].header.get("StudyDate"))
        assert {s.uid for s in gpukit.scan(orthanc.dicomweb_url, date=(date, None), modality="CT", client=c)} >= \
            {tilt.uid}
        assert len(gpukit.scan(orthanc.dicomweb_url, date="19000101-19000102", client=c)) == 0
        assert len(gpukit.scan(orthanc.dicomweb_url, study=study, date="19000101", client=c)) == 0
        one = gpukit.scan(series_url(tilt), client=c)
        assert [s.uid for s in one] == [tilt.uid]


# -- load over DICOMweb == load from disk ------------------------------------------------------------------------------
_META_KEYS = ("modality", "series_uid", "series_id", "study_uid", "frame_of_reference_uid", "sop_class_uid",
              "series_description", "series_number", "rescale_type", "window_center", "window_width",
              "voi_lut_function", "photometric_interpretation", "pixel_padding_value", "bits_stored", "signed",
              "tilt_deg", "gantry_tilt_tag", "transfer_syntax", "split_reason", "echo_time", "frame_indices",
              "spacing_report", "regular")


def _assert_same_volume(vd, vw, *, same_id=True):
    assert vw.data.dtype == vd.data.dtype and vw.shape == vd.shape
    assert np.array_equal(vw.data, vd.data)
    assert np.array_equal(vw.affine, vd.affine)
    for k in _META_KEYS:
        if k == "series_id" and not same_id:
            continue
        assert vw.meta.get(k) == vd.meta.get(k), k
    for k in ("rescale_slope", "rescale_intercept", "slice_positions"):
        assert np.array_equal(vw.meta[k], vd.meta[k]), k
    # the same instances, in the same slice order
    assert vw.meta["instance_uids"] == [_sop(p) for p in vd.meta["files"]]
    assert all(u.endswith("/instances/" + s) for u, s in zip(vw.meta["files"], vw.meta["instance_uids"]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ORTHANC_SERIES)
def test_load_equals_disk(orthanc, web_scan, name, shared_cache):
    disk, web = _disk_and_web(web_scan, name)
    loadable = [s for s in disk if s.kind in ("volume", "image")]
    assert loadable
    with _client(orthanc) as c:
        for d in loadable:
            w = _match(d, web)
            vd = gpukit.load(d)
            vw = gpukit.load(w, client=c, cache=shared_cache, parallel=4)
            _assert_same_volume(vd, vw, same_id="split by source file" not in d.split_reason)
            assert vw.meta["source_url"] == series_url(w)


def test_load_by_url_with_credentials_from_the_environment(orthanc, monkeypatch, tmp_path):
    monkeypatch.setenv("GPUKIT_DICOMWEB_USER", orthanc.user)
    monkeypatch.setenv("GPUKIT_DICOMWEB_PASSWORD", orthanc.password)
    monkeypatch.setenv("GPUKIT_DICOMWEB_CACHE", str(tmp_path / "cache"))
    disk = gpukit.scan(data_path("enh_mr_siemens_xa30"))
    fmap = [s for s in disk if s.series_number == 8]
    # a series number picks the volume parts; a split series needs its part: uid#2, or a series URL with #2
    with pytest.raises(gpukit.AmbiguousSeriesError):
        gpukit.load(orthanc.dicomweb_url, series=8)
    vw = gpukit.load(orthanc.dicomweb_url, series=fmap[1].id)
    _assert_same_volume(gpukit.load(fmap[1]), vw)
    url = vw.meta["source_url"]
    assert url.endswith("#2") and orthanc.password not in url
    _assert_same_volume(gpukit.load(fmap[1]), gpukit.load(url))
    assert any((tmp_path / "cache" / "objects").iterdir())          # the default cache, from the environment


# -- the cache ---------------------------------------------------------------------------------------------------------
def test_rerun_downloads_nothing(orthanc, tmp_path):
    cache = InstanceCache(tmp_path / "cache")
    log1, log2 = RequestLog(), RequestLog()
    with _client(orthanc, event_hooks={"request": [log1]}) as c:
        v1 = gpukit.load(orthanc.dicomweb_url, series=201, client=c, cache=cache)
    assert log1.seen["instance"] == 54 == c.stats.total("instance")
    with _client(orthanc, event_hooks={"request": [log2]}) as c:
        v2 = gpukit.load(orthanc.dicomweb_url, series=201, client=c, cache=cache)
        assert log2.seen["instance"] == 0 and c.stats.total("instance") == 0
        assert log2.seen["metadata"] == 1       # the metadata is read again (small): the table is always current
    assert np.array_equal(v1.data, v2.data) and np.array_equal(v1.affine, v2.affine)
    # a second cache folder means a second download; the objects are content-addressed
    objects = list((tmp_path / "cache" / "objects").rglob("*.dcm"))
    assert len(objects) == 54
    import hashlib

    p = objects[0]
    assert p.stem == hashlib.sha256(p.read_bytes()).hexdigest()


def test_cache_lru_eviction_and_atomic_puts(tmp_path):
    cache = InstanceCache(tmp_path / "c", max_bytes=3000)
    paths = [cache.put(InstanceCache.key("http://x", f"1.2.{n}"), bytes([n]) * 1000) for n in range(5)]
    import os

    for n, p in enumerate(paths):            # distinct, strictly increasing last-use times
        os.utime(p, (1_000_000 + n, 1_000_000 + n))
    cache.get(InstanceCache.key("http://x", "1.2.0"))     # a use: 1.2.0 becomes the most recent
    assert cache.evict() == 2000 and cache.size() == 3000
    assert cache.get(InstanceCache.key("http://x", "1.2.1")) is None
    assert cache.get(InstanceCache.key("http://x", "1.2.2")) is None
    assert Path(cache.get(InstanceCache.key("http://x", "1.2.0"))).read_bytes() == bytes([0]) * 1000
    assert not [p for p in (tmp_path / "c").rglob(".tmp-*")]
    # a check that fails stores nothing
    with pytest.raises(ValueError):
        cache.put(InstanceCache.key("http://x", "9"), b"bad", check=lambda p: (_ for _ in ()).throw(ValueError()))
    assert cache.get(InstanceCache.key("http://x", "9")) is None and not list((tmp_path / "c").rglob(".tmp-*"))


def _put_many(root, n):
    cache = InstanceCache(root, max_bytes=10**9)
    for k in range(n):
        cache.put(InstanceCache.key("http://x", f"1.{k}"), (b"%d" % k) * 4096)
        cache.evict(20 * 4096)
    return True


def test_cache_several_processes(tmp_path):
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(3) as pool:
        assert all(pool.starmap(_put_many, [(str(tmp_path / "c"), 40)] * 3))
    cache = InstanceCache(tmp_path / "c")
    for k in range(40):
        p = cache.get(InstanceCache.key("http://x", f"1.{k}"))
        assert p is None or Path(p).read_bytes() == (b"%d" % k) * 4096     # whole or absent, never partial
    assert not list((tmp_path / "c").rglob(".tmp-*"))


# -- faults ------------------------------------------------------------------------------------------------------------
def _shorten_part(body: bytes, n: int = 1000) -> bytes:
    """A multipart answer whose one DICOM part lost its last ``n`` bytes, with every length made consistent again
    (so only the DICOM file itself shows the damage)."""
    import re

    start = body.index(b"\r\n\r\n") + 4
    end = body.rindex(b"\r\n--")
    head = re.sub(rb"Content-Length: *\d+", b"Content-Length: %d" % (end - start - n), body[:start])
    return head + body[start:end - n] + body[end:]


class FaultProxy(LocalProxy):
    """A real HTTP proxy on 127.0.0.1 that forwards GETs to Orthanc and injects faults.

    ``rule(path, n)`` (``n``: how many times this path was asked before) returns None (forward), ``"503"``
    (answer 503 Service Unavailable), ``"cut"`` (send the headers with the full Content-Length, then half the
    body, then close) or ``"short"`` (a whole, well-framed answer whose DICOM file lacks its last 1000 bytes).
    """

    def __init__(self, target: str, rule):
        self.target = urlsplit(target)
        self.rule = rule
        self.asked: Counter = Counter()
        self.injected: Counter = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with proxy._lock:
                    n = proxy.asked[self.path]
                    proxy.asked[self.path] += 1
                fault = proxy.rule(self.path, n)
                if fault == "503":
                    with proxy._lock:
                        proxy.injected["503"] += 1
                    body = b"busy"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                conn = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=30)
                try:
                    fwd = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept",
                                                                                  "accept-encoding")}
                    conn.request("GET", self.path, headers=fwd)
                    resp = conn.getresponse()
                    body = resp.read()
                finally:
                    conn.close()
                if fault == "short":
                    with proxy._lock:
                        proxy.injected["short"] += 1
                    body = _shorten_part(body)
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                if fault == "cut":
                    with proxy._lock:
                        proxy.injected["cut"] += 1
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler, self.target.path)


def _tilt_201(orthanc):
    disk = gpukit.scan(data_path("ct_philips_tilt"))
    return [s for s in disk if s.series_number == 201][0]


def test_503_on_some_instances_is_retried(orthanc, tmp_path):
    # every third instance answers 503 twice before it is served
    def rule(path, n):
        return "503" if "/instances/" in path and zlib.crc32(path.encode()) % 3 == 0 and n < 2 else None

    with FaultProxy(orthanc.dicomweb_url, rule) as proxy:
        with _client(orthanc, proxy.url, backoff=0.01) as c:
            vw = gpukit.load(proxy.url, series=201, client=c, cache=tmp_path / "cache")
            assert c.stats.retries == proxy.injected["503"] > 0
    _assert_same_volume(gpukit.load(_tilt_201(orthanc)), vw)


@pytest.mark.parametrize("fault", ["cut", "short"])
def test_truncated_instance_is_a_typed_error_naming_it(orthanc, tmp_path, fault):
    disk = _tilt_201(orthanc)
    victim = _sop(disk.files[7])

    def rule(path, n):
        return fault if path.endswith("/instances/" + victim) else None

    cache = InstanceCache(tmp_path / "cache")
    with FaultProxy(orthanc.dicomweb_url, rule) as proxy:
        with _client(orthanc, proxy.url, backoff=0.01, retries=2) as c:
            with pytest.raises(IncompleteSeriesError) as ei:
                gpukit.load(proxy.url, series=201, client=c, cache=cache)
            # the first try and two retries, all damaged
            assert sum(v for k, v in proxy.asked.items() if k.endswith("/instances/" + victim)) == 3
    err = ei.value
    assert victim in str(err) and err.missing == [victim]
    assert isinstance(err.failures[victim], TruncatedResponseError)
    assert victim in str(err.failures[victim])
    # nothing partial was kept: the cut instance is not in the cache, the 53 whole ones are
    server = proxy.url.rstrip("/")
    assert cache.get(InstanceCache.key(server, victim)) is None
    assert len(list((tmp_path / "cache" / "objects").rglob("*.dcm"))) == 53


@pytest.mark.slow
def test_server_stopped_mid_series(tmp_path):
    from orthanc_server import OrthancServer, find_orthanc

    if find_orthanc()[2]:
        pytest.skip(find_orthanc()[2])
    folder = data_path("ct_philips_tilt", "In", "Philips", "S21610", "S2010")
    with OrthancServer() as srv:
        srv.upload_folder(folder)
        served = []

        def stop_after_ten(response):       # an httpx response hook: the server goes away after 10 instances
            if "/instances/" in response.url.path:
                served.append(response.url.path)
                if len(served) == 10:
                    srv.stop()

        cache = InstanceCache(tmp_path / "cache")
        with _client(srv, event_hooks={"response": [stop_after_ten]}, retries=1, backoff=0.01) as c:
            found = gpukit.scan(srv.dicomweb_url, client=c)
            info = found.volumes[0]
            with pytest.raises(IncompleteSeriesError) as ei:
                gpukit.load(info, client=c, cache=cache, parallel=2)
    err = ei.value
    n = len(instance_uids(info))
    cached = {u for u in instance_uids(info) if cache.get(InstanceCache.key(srv.dicomweb_url, u))}
    assert n == 54 and 0 < len(err.missing) <= n - 8
    # every instance is either whole in the cache or named as missing, never both
    assert set(err.missing) | cached == set(instance_uids(info)) and not set(err.missing) & cached
    assert err.missing[0] in str(err) and "could not be retrieved" in str(err)


def test_wrong_password_is_an_auth_error_without_the_password(orthanc, monkeypatch):
    wrong = "Wr0ng-Passw0rd-xyz"
    with DicomWebClient(orthanc.dicomweb_url, auth=(orthanc.user, wrong)) as c:
        assert wrong not in repr(c)
        with pytest.raises(DicomWebAuthError) as ei:
            gpukit.scan(orthanc.dicomweb_url, client=c)
    assert ei.value.status == 401 and wrong not in str(ei.value) and orthanc.user in str(ei.value)
    assert isinstance(ei.value, GpukitError)
    # from the environment, through gpukit.load, and in the URL itself
    monkeypatch.setenv("GPUKIT_DICOMWEB_USER", orthanc.user)
    monkeypatch.setenv("GPUKIT_DICOMWEB_PASSWORD", wrong)
    with pytest.raises(DicomWebAuthError) as ei:
        gpukit.load(orthanc.dicomweb_url, series=201)
    assert wrong not in str(ei.value) and "environment" in str(ei.value)
    with_userinfo = orthanc.dicomweb_url.replace("http://", f"http://{orthanc.user}:{wrong}@")
    with pytest.raises(DicomWebAuthError) as ei:
        gpukit.scan(with_userinfo)
    assert wrong not in str(ei.value) and wrong not in repr(ei.value)
    # no credentials at all: refused as well
    monkeypatch.delenv("GPUKIT_DICOMWEB_USER")
    monkeypatch.setenv("GPUKIT_DICOMWEB_CONFIG", "/nonexistent/dicomweb.toml")
    with pytest.raises(DicomWebAuthError):
        gpukit.scan(orthanc.dicomweb_url)


def test_credentials_never_shown_or_pickled(orthanc, tmp_path, monkeypatch):
    cred = Credentials.basic("alice", "hunter2-secret")
    assert "hunter2" not in repr(cred) and "hunter2" not in str(cred) and "hunter2" not in cred.describe()
    with pytest.raises(TypeError):
        pickle.dumps(cred)
    with pytest.raises(TypeError):
        pickle.dumps(DicomWebClient("http://127.0.0.1:1/dicom-web", auth=cred))
    # the config file, longest URL prefix first; its secret stays out of messages too
    conf = tmp_path / "dicomweb.toml"
    conf.write_text(f'[[server]]\nurl = "{orthanc.url}"\ntoken = "nope"\n\n'
                    f'[[server]]\nurl = "{orthanc.dicomweb_url}"\nuser = "{orthanc.user}"\n'
                    f'password = "{orthanc.password}"\n')
    monkeypatch.setenv("GPUKIT_DICOMWEB_CONFIG", str(conf))
    for k in ("GPUKIT_DICOMWEB_USER", "GPUKIT_DICOMWEB_PASSWORD", "GPUKIT_DICOMWEB_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    found = gpukit.scan(orthanc.dicomweb_url, modality="MR")
    assert found and all(orthanc.password not in f.path for s in found for f in s.frames)


def test_cli_info_url(orthanc, monkeypatch, capsys):
    import json

    from gpukit.cli import main

    monkeypatch.setenv("GPUKIT_DICOMWEB_USER", orthanc.user)
    monkeypatch.setenv("GPUKIT_DICOMWEB_PASSWORD", orthanc.password)
    assert main(["info", orthanc.dicomweb_url + "?Modality=CT", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["series_number"] for s in out["series"]} == {100, 201, 202, 301, 401}
    geo = {g["id"]: g for g in out["geometry"]}
    tilt = [s for s in out["series"] if s["series_number"] == 201][0]
    assert geo[tilt["id"]]["shape_kji"] == [54, 512, 512] and abs(geo[tilt["id"]]["tilt_deg"]) > 10
    assert orthanc.password not in json.dumps(out)
    monkeypatch.setenv("GPUKIT_DICOMWEB_PASSWORD", "wrong")
    assert main(["info", orthanc.dicomweb_url]) == 2
    assert "wrong" not in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_section_quick(orthanc, monkeypatch):
    """The smallest size of the benchmark section runs (a benchmark nothing runs rots)."""
    import importlib

    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT))
    bench = importlib.import_module("benchmarks.bench_dicomweb")
    monkeypatch.setenv("GPUKIT_BENCH_DICOMWEB_URL", orthanc.dicomweb_url)
    monkeypatch.setenv("GPUKIT_DICOMWEB_USER", orthanc.user)
    monkeypatch.setenv("GPUKIT_DICOMWEB_PASSWORD", orthanc.password)
    rows = bench.run(54, 1)
    assert [r["impl"].split(",")[0].split(":")[0] for r in rows] == ["disk", "DICOMweb", "DICOMweb", "DICOMweb"]
    # reported, not judged (speed is the benchmark's business): every row has its rates
    assert all({"series_per_s", "mb_per_s"} <= set(r) for r in rows)
    assert [r.get("instances_per_load") for r in rows[1:]] == [54, 54, 0]     # cold, cold, warm cache


def test_credentials_in_the_url(orthanc, monkeypatch, tmp_path):
    for k in ("GPUKIT_DICOMWEB_USER", "GPUKIT_DICOMWEB_PASSWORD", "GPUKIT_DICOMWEB_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GPUKIT_DICOMWEB_CONFIG", str(tmp_path / "none.toml"))
    userinfo = orthanc.dicomweb_url.replace("http://", f"http://{orthanc.user}:{orthanc.password}@")
    found = gpukit.scan(userinfo, series=8)
    assert [s.id.endswith(("#1", "#2")) for s in found] == [True, True]
    url = series_url(found[1]).replace("http://", f"http://{orthanc.user}:{orthanc.password}@")
    vol = gpukit.load(url, cache=tmp_path / "cache")
    assert vol.shape == (33, 64, 64) and vol.meta["series_id"] == found[1].id
    assert orthanc.password not in repr(vol.meta) and orthanc.password not in vol.meta["source_url"]


def test_view_serves_a_series_from_the_server(orthanc, monkeypatch, tmp_path):
    """``gpukit view URL --series N`` (through :func:`gpukit.view`, which the CLI calls): the viewer holds the
    series retrieved over DICOMweb, equal to the same files from disk, behind its token."""
    import urllib.error
    import urllib.request

    monkeypatch.setenv("GPUKIT_DICOMWEB_USER", orthanc.user)
    monkeypatch.setenv("GPUKIT_DICOMWEB_PASSWORD", orthanc.password)
    monkeypatch.setenv("GPUKIT_DICOMWEB_CACHE", str(tmp_path / "cache"))
    srv = gpukit.view(orthanc.dicomweb_url, series=202, backend="numpy")
    try:
        held = srv.renderer.volume
        disk = gpukit.load(data_path("ct_philips_1mm"), series=202)
        assert np.array_equal(held.to_numpy(), disk.data)
        assert np.array_equal(held.affine, disk.affine)
        assert srv.url.startswith("http://127.0.0.1:") and orthanc.password not in srv.url
        with urllib.request.urlopen(srv.url, timeout=30) as r:
            assert r.status == 200 and b"viewer.js" in r.read()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(srv.url.split("?")[0], timeout=30)
        assert e.value.code == 403
    finally:
        srv.stop()


def test_load_onto_the_device_stand_in(orthanc, monkeypatch, tmp_path):
    """``load(url, backend=...)`` on the device stand-in: the retrieved series goes through the device reader and
    equals the same files from disk (what a GPU user's load over DICOMweb runs)."""
    from conftest import require_backend

    require_backend("cuda-host")
    monkeypatch.setenv("GPUKIT_DICOMWEB_USER", orthanc.user)
    monkeypatch.setenv("GPUKIT_DICOMWEB_PASSWORD", orthanc.password)
    vol = gpukit.load(orthanc.dicomweb_url, series=202, backend="cuda-host", cache=str(tmp_path / "cache"))
    assert vol.backend == "cuda-host"
    disk = gpukit.load(data_path("ct_philips_1mm"), series=202)
    assert np.array_equal(vol.to_numpy(), disk.data) and np.array_equal(vol.affine, disk.affine)
