"""STOW-RS: derived series written as DICOM, stored on a real Orthanc, read back over DICOMweb.

The stored volume is read back with gpukit.load over DICOMweb and compared with what was stored: the affine to
1e-4 mm (decimal strings of 16 characters), the voxels exactly for int16 values and within the quantisation
(``slope / 2``) for float ones. The datasets are checked as files (pydicom round trip), their UIDs are new and
unique, and they reference the source series and instances.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

import gpukit
from gpukit.dicomweb import DicomWebClient
from gpukit.dicomweb.stow import derived_series, secondary_capture, store, to_bytes
from gpukit.errors import DicomWebAuthError

from orthanc_server import LocalProxy


pytest.importorskip("httpx")


def delete_series(srv, uids) -> None:
    """Remove series this test stored from the session's Orthanc (other tests count the series there)."""
    for uid in uids:
        for hit in srv.rest("POST", "/tools/lookup", str(uid).encode()) or []:
            if hit.get("Type") == "Series":
                srv.rest("DELETE", f"/series/{hit['ID']}")


@pytest.fixture
def stored(orthanc):
    """A list of SeriesInstanceUIDs a test stores on the session's Orthanc: deleted again afterwards."""
    uids: list = []
    yield uids
    delete_series(orthanc, uids)


def _client(srv, **kw):
    kw.setdefault("auth", (srv.user, srv.password))
    return DicomWebClient(srv.dicomweb_url, **kw)


@pytest.fixture(scope="module")
def source(orthanc):
    """The gantry-tilted CT (series 201, a sheared affine), scanned and loaded over DICOMweb once."""
    with _client(orthanc) as c:
        found = gpukit.scan(orthanc.dicomweb_url, series=201, client=c)
        info = found.volumes[0]
        return info, gpukit.load(info, client=c, cache=False)


def _patient(info):
    h = info.frames[0].header
    return {k: str(h.get(k) or "") for k in ("PatientName", "PatientID", "StudyDate", "StudyTime")}


def _check_datasets(dss, source_vol, source_sops):
    uids = [str(d.SOPInstanceUID) for d in dss]
    assert len(set(uids)) == len(uids)
    assert not set(uids) & set(source_sops)                                     # new instances
    assert {str(d.SeriesInstanceUID) for d in dss} != {source_vol.meta["series_uid"]}
    assert len({str(d.SeriesInstanceUID) for d in dss}) == 1
    for d in dss:
        back = pydicom.dcmread(io.BytesIO(to_bytes(d)))                          # a valid Part 10 file
        assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert back.SOPInstanceUID == d.SOPInstanceUID and back.pixel_array.shape == (d.Rows, d.Columns)
        assert back.ReferencedSeriesSequence[0].SeriesInstanceUID == source_vol.meta["series_uid"]
        assert [s.ReferencedSOPInstanceUID for s in back.SourceImageSequence] == list(source_sops)
        assert "DERIVED" in back.ImageType and back.DerivationDescription
        assert back.StudyInstanceUID == source_vol.meta["study_uid"]


def test_stow_regularized_tilted_ct_round_trip(orthanc, source, stored):
    info, vol = source
    assert abs(vol.meta.get("tilt_deg") or 0) > 10
    reg = gpukit.regularize(vol, 2.0)                       # float values on a regular 2 mm grid
    meta = {**vol.meta, "patient": _patient(info)}
    dss = derived_series(reg, source_meta=meta, description="regularized 2mm", derivation="untilted, 2 mm")
    assert dss[0].SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and dss[0].Modality == "CT"
    _check_datasets(dss, vol, vol.meta["instance_uids"])
    stored.append(str(dss[0].SeriesInstanceUID))
    with _client(orthanc) as c:
        got = store(c, dss, study=vol.meta["study_uid"])
        assert got["instances"] == len(dss) == reg.shape[0] and c.stats.total("stow") >= 1
        new_uid = str(dss[0].SeriesInstanceUID)
        back = gpukit.load(f"{orthanc.dicomweb_url}/studies/{vol.meta['study_uid']}/series/{new_uid}",
                           client=c, cache=False)
    assert back.shape == reg.shape
    np.testing.assert_allclose(back.affine, reg.affine, atol=1e-4, rtol=0)
    want = np.asarray(reg.hu(), dtype=np.float64)
    slope = float(dss[0].RescaleSlope)
    assert slope < 0.2                                     # a real quantisation, not an identity
    err = np.abs(np.asarray(back.hu(), dtype=np.float64) - want)
    # within half a quantisation step (plus float32 rounding of the values read back)
    assert err.max() <= slope / 2 + 1e-6 * max(1.0, np.abs(want).max())
    assert back.meta["modality"] == "CT" and back.meta["series_uid"] == new_uid


def test_stow_int16_exact_and_secondary_capture(orthanc, source, stored):
    info, vol = source
    hu = np.asarray(vol.hu())
    assert hu.dtype == np.int16
    dss = derived_series(vol, source_meta={**vol.meta, "patient": _patient(info)})
    assert float(dss[0].RescaleSlope) == 1.0 and float(dss[0].RescaleIntercept) == 0.0
    mip = np.asarray(gpukit.window(gpukit.project(vol, "coronal"), 40, 400))
    sc = secondary_capture(mip, source_meta={**vol.meta, "patient": _patient(info)})
    _check_datasets([sc], vol, vol.meta["instance_uids"])
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    stored += [str(dss[0].SeriesInstanceUID), str(sc.SeriesInstanceUID)]
    with _client(orthanc) as c:
        store(c, dss + [sc])
        study = vol.meta["study_uid"]
        back = gpukit.load(f"{orthanc.dicomweb_url}/studies/{study}/series/{dss[0].SeriesInstanceUID}",
                           client=c, cache=False)
        # the stored values exactly; the tilt (a sheared affine) kept through ImagePositionPatient
        np.testing.assert_array_equal(np.asarray(back.hu()), hu)
        np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4, rtol=0)
        # the secondary capture: one instance, its pixels as sent
        sc_found = gpukit.scan(orthanc.dicomweb_url, series=str(sc.SeriesInstanceUID), client=c)
        assert len(sc_found) == 1
        raw = c.retrieve_instance(study, str(sc.SeriesInstanceUID), str(sc.SOPInstanceUID))
    np.testing.assert_array_equal(pydicom.dcmread(io.BytesIO(raw)).pixel_array, mip)
    assert mip.std() > 0


def test_stow_wrong_password_is_typed(orthanc, source):
    info, vol = source
    dss = derived_series(vol, source_meta=vol.meta)[:2]
    with _client(orthanc, auth=(orthanc.user, "nope-wrong")) as c:
        with pytest.raises(DicomWebAuthError) as ei:
            store(c, dss)
    assert "nope-wrong" not in str(ei.value)


class _BusyOnce(LocalProxy):
    """A real HTTP proxy on 127.0.0.1 for POSTs: the first ``busy`` POSTs get 503, the rest go to Orthanc."""

    def __init__(self, target: str, busy: int = 2):
        import http.client
        from http.server import BaseHTTPRequestHandler
        from urllib.parse import urlsplit

        t = urlsplit(target)
        self.path_prefix, self.posts = t.path, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.posts += 1
                if proxy.posts <= busy:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(t.hostname, t.port, timeout=60)
                try:
                    fwd = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept",
                                                                                  "content-type")}
                    conn.request("POST", self.path, body=body, headers=fwd)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type", "application/dicom+json"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler, self.path_prefix)


def test_stow_503_is_retried(orthanc, source, stored):
    info, vol = source
    dss = derived_series(vol, source_meta={**vol.meta, "patient": _patient(info)})[:3]
    stored.append(str(dss[0].SeriesInstanceUID))
    with _BusyOnce(orthanc.dicomweb_url, busy=2) as proxy:
        with DicomWebClient(proxy.url, auth=(orthanc.user, orthanc.password), backoff=0.01) as c:
            got = store(c, dss)
            assert c.stats.retries == 2 and c.stats.total("stow") == 3 and proxy.posts == 3
    assert got["instances"] == 3
    with _client(orthanc) as c:
        found = gpukit.scan(orthanc.dicomweb_url, series=str(dss[0].SeriesInstanceUID), client=c)
    assert [len(s.frames) for s in found] == [3]
