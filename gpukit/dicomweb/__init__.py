"""DICOMweb: scan and load series straight from a PACS (QIDO-RS, WADO-RS), with a local instance cache.

The usual entry points are :func:`gpukit.scan` and :func:`gpukit.load`, which take a DICOMweb URL wherever they
take a path::

    found = gpukit.scan("https://pacs/dicom-web", modality="CT", date=("2024-01-01", None))
    vol = gpukit.load("https://pacs/dicom-web", series=found.volumes[0])       # or series="uid", series=201
    vol = gpukit.load("https://pacs/dicom-web/studies/1.2.3/series/4.5.6")    # a series URL

The pieces, for batch drivers and finer control:

- :class:`DicomWebClient`: one server, one connection pool, credentials (:mod:`.auth`), retries, counters;
- :func:`scan` -> :class:`~gpukit.dicom.scan.ScanResult`; :func:`series_url` keys a found series
  (``server/studies/S/series/Y[#part]``, no credentials) and :func:`instance_uids` lists its instances;
- :func:`load_series` -> :class:`~gpukit.Volume` (through :func:`fetch_instances` and an :class:`InstanceCache`);
- STOW-RS (:mod:`.stow`): :func:`derived_series` (a volume as a new CT/MR series, geometry from its affine) and
  :func:`secondary_capture` (a MIP picture) referencing their source, :func:`store` posts them;
- in a batch (:mod:`.batch`): ``gpukit.batch.run_batch(URL, OUT, query=..., stow=URL)``.

``httpx`` is imported only when a client is made.
"""

from __future__ import annotations

from .auth import Credentials
from .cache import InstanceCache, default_cache_dir
from .client import DicomWebClient, RequestStats
from .source import (DEFAULT_PARALLEL, WebLocation, client_for_url, fetch_instances, instance_uids, is_url,
                     load_series, parse_url, scan, series_url)
from .stow import derived_series, secondary_capture, store

__all__ = ["DicomWebClient", "RequestStats", "Credentials", "InstanceCache", "default_cache_dir", "scan",
           "load_series", "fetch_instances", "client_for_url", "series_url", "instance_uids", "parse_url", "is_url",
           "WebLocation", "DEFAULT_PARALLEL", "derived_series", "secondary_capture", "store"]
