"""DICOMweb in a batch: what :func:`gpukit.batch.run_batch` calls when its input is a URL, or when it stores
derived series back (``stow=URL``).

- the driver scans the server once (:func:`scan_source`: QIDO-RS + WADO-RS metadata, no pixels) and submits one
  Dask task per series with its :class:`~gpukit.dicom.scan.SeriesInfo` (it pickles: URLs and headers, never
  credentials);
- each worker fetches its own series (:func:`load_for_worker`): its own client, credentials from its own
  environment or credentials file, instances through its own default cache (``GPUKIT_DICOMWEB_CACHE``);
- the manifest records each series' URL key and instance UIDs (:func:`manifest_fields`), no credentials;
- with ``stow``, the worker stores a derived series (the volume on a regular grid) and a secondary-capture MIP
  on the server after the recipe's outputs are written (:func:`store_derived`), and records their UIDs.

Credentials in the batch URL itself (``user:password@``) serve the driver's scan only: the workers read theirs
from their environment (``GPUKIT_DICOMWEB_TOKEN``, or ``_USER`` and ``_PASSWORD``) or the credentials file, so
no secret travels in a task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dicom.scan import ScanResult, SeriesInfo
from .source import DEFAULT_PARALLEL, instance_uids, load_series, scan, series_url

#: the patient and study attributes a derived series copies from its source (so the server files it with it)
PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "AccessionNumber", "StudyID", "ReferringPhysicianName")


def scan_source(url: str, *, modality: str | None = None, date: Any = None, filters: dict | None = None,
                study: str | None = None) -> ScanResult:
    """The driver's scan of a DICOMweb batch source (see :func:`gpukit.dicomweb.scan`)."""
    return scan(url, study=study, modality=modality, date=date, filters=filters)


def manifest_fields(info: SeriesInfo) -> dict:
    """What a manifest record keeps of a web series: its URL key and its instance UIDs (no credentials)."""
    return {"source_url": series_url(info), "instance_uids": instance_uids(info)}


def load_for_worker(info: SeriesInfo, backend: str | None = None, parallel: int = DEFAULT_PARALLEL):
    """A worker's load of its series: its own client (credentials from its environment), its default cache."""
    return load_series(info, backend=backend, cache=None, parallel=parallel)


def _patient(info: SeriesInfo) -> dict:
    h = info.frames[0].header
    out = {}
    for k in PATIENT_KEYS:
        try:
            v = h.get(k)
        except Exception:       # a header without the attribute
            v = None
        if v is not None and str(v) != "":
            out[k] = str(v)
    return out


def _resample_spacing(recipe) -> float | None:
    for o in getattr(recipe, "outputs", []):
        if o.kind == "resample":
            return float(o.params.get("spacing_mm") or 1.0)
    return None


def store_derived(vol, info: SeriesInfo, recipe, stow_url: str, backend: str | None = None) -> dict:
    """Store back, on the server of ``stow_url``, a derived series of ``vol`` and a secondary-capture MIP.

    The derived series is the volume on a regular, unsheared grid (:func:`gpukit.regularize`: the recipe's
    ``resample`` spacing when it has one, else the volume's own smallest spacing; a volume that is already
    regular is stored as it is). The MIP is the coronal maximum projection, windowed with the file's window
    (else a percentile window). Both reference the source series and instances. Returns the manifest's
    ``stored`` entry: ``{"url", "series": [{"series_uid", "instances", "what"}]}``.
    """
    from ..arrays import to_host
    from ..ops.intensity import window
    from ..ops.sampling import project, regularize
    from .source import parse_url
    from .stow import derived_series, secondary_capture, store

    meta = {**vol.meta, "instance_uids": instance_uids(info), "patient": _patient(info)}
    spacing = _resample_spacing(recipe)
    sheared = not np.allclose(vol.affine[:3, 2] / np.linalg.norm(vol.affine[:3, 2]),
                              np.cross(vol.affine[:3, 0] / np.linalg.norm(vol.affine[:3, 0]),
                                       vol.affine[:3, 1] / np.linalg.norm(vol.affine[:3, 1])), atol=1e-6)
    if spacing is not None or sheared or not vol.meta.get("regular", True):
        reg = regularize(vol, spacing, backend=backend)
        what = f"regularized ({'%.3g mm' % spacing if spacing else 'own spacing'})"
    else:
        reg, what = vol, "as loaded"
    series = derived_series(reg, source_meta=meta, description=f"gpukit {what}"[:64],
                            derivation=f"gpukit: {what} from series {vol.meta.get('series_uid')}")
    mip = np.asarray(to_host(project(vol, "coronal", mode="max", backend=backend)))
    win = _file_window(vol)
    img = np.asarray(to_host(window(mip, *win))) if win else _percentile_window(mip)
    sc = secondary_capture(img.astype(np.uint8), source_meta=meta)
    study = vol.meta.get("study_uid")
    server = parse_url(stow_url).server
    store(stow_url, series + [sc], study=study)
    return {"url": server, "series": [
        {"series_uid": str(series[0].SeriesInstanceUID), "instances": len(series), "what": what},
        {"series_uid": str(sc.SeriesInstanceUID), "instances": 1, "what": "secondary capture coronal MIP"}]}


def _file_window(vol) -> tuple[float, float] | None:
    """The file's first WindowCenter/WindowWidth, or None."""
    c, w = vol.meta.get("window_center"), vol.meta.get("window_width")
    c = c[0] if isinstance(c, (list, tuple)) and c else c
    w = w[0] if isinstance(w, (list, tuple)) and w else w
    try:
        c, w = float(c), float(w)
    except (TypeError, ValueError):
        return None
    return (c, w) if w >= 1 else None


def _percentile_window(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [1, 99.5])
    if hi <= lo:
        hi = lo + 1
    return np.clip((x.astype(np.float64) - lo) * (255.0 / (hi - lo)), 0, 255).round().astype(np.uint8)


__all__ = ["scan_source", "manifest_fields", "load_for_worker", "store_derived"]
