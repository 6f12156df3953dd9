"""``gpukit demo``: the main job on a fresh machine, with no arguments and no data of your own.

1. writes a synthetic CT study of real DICOM files: a chest phantom in
   Hounsfield units (:func:`gpukit.testing.phantom`: soft tissue, fat, lungs,
   heart, aorta, spine, ribs, table, calcifications; 12-bit stored values with
   intercept -1024, noise, a different body outline in every slice), once as
   an ordinary axial series and once with a gantry tilt (sheared geometry);
2. runs the default batch recipe over it (:mod:`gpukit.batch`, a Dask
   ``LocalCluster``) with the best backend available;
3. prints where the pictures are and how long each step took.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

#: (name, shape (nz, ny, nx), pixel spacing (row, col) mm, slice step mm, gantry tilt deg, series number)
SERIES = (
    ("chest_axial", (240, 384, 384), (0.9, 0.9), 1.25, 0.0, 2),
    ("chest_tilted", (120, 384, 384), (0.9, 0.9), 2.5, 15.0, 3),
)


def _tilted_stored(shape, ps, step, tilt_deg, origin, seed) -> np.ndarray:
    """Stored values of a tilted acquisition of an upright patient.

    The phantom stands upright in patient space (a regular axial grid); the
    tilted slices sample it where they lie: slice ``k`` at ``origin + k *
    step * (cos t * z + sin t * y)`` (the convention of
    :func:`gpukit.testing.write_series`), so in index space the patient is
    sheared and in patient space upright, as on a real tilted scanner.
    """
    from . import testing
    from .ops.sampling import resample
    from .volume import Volume

    nz, ny, nx = shape
    t = np.radians(tilt_deg)
    step_vec = step * np.array([0.0, np.sin(t), np.cos(t)])
    z_extent = (nz - 1) * step_vec[2]
    nz_up = int(np.ceil(z_extent / ps[0])) + 1
    hu_up = testing.phantom((nz_up, ny, nx), seed=seed)
    up_aff = np.eye(4)
    up_aff[:3, :3] = np.diag([ps[1], ps[0], z_extent / (nz_up - 1)])
    up_aff[:3, 3] = origin
    upright = Volume(np.clip(np.rint(hu_up + 1024.0), 0, 4095).astype(np.int16), up_aff,
                     {"rescale_intercept": -1024.0})
    tilted_aff = up_aff.copy()
    tilted_aff[:3, 2] = step_vec
    hu = resample(upright, tilted_aff, shape, fill=-1000.0).data
    return np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.int16), tilted_aff


def write_study(root: "str | os.PathLike", scale: float = 1.0, seed: int = 0) -> list:
    """Write the demo study under ``root``; ``scale`` < 1 shrinks every dimension (tests use it)."""
    from . import testing

    root = Path(root)
    out = []
    for n, (name, shape, ps, step, tilt, number) in enumerate(SERIES):
        shp = tuple(max(8, int(round(s * scale))) for s in shape)
        ps_s = (ps[0] * shape[1] / shp[1], ps[1] * shape[2] / shp[2])   # the same field of view at any scale
        step_s = step * shape[0] / shp[0]
        origin = (-ps_s[1] * (shp[2] - 1) / 2, -ps_s[0] * (shp[1] - 1) / 2, 0.0)
        planned = None
        if tilt:
            stored, planned = _tilted_stored(shp, ps_s, step_s, tilt, origin, seed + n)
        else:
            stored = np.clip(np.rint(testing.phantom(shp, seed=seed + n) + 1024.0), 0, 4095).astype(np.int16)
        s = testing.write_series(root / name, data=stored, pixel_spacing=ps_s, slice_step=step_s, tilt_deg=tilt,
                                 intercept=-1024.0, slope=1.0, bits_stored=12, signed=False, series_number=number,
                                 series_description=name, window=[(40, 400), (-600, 1500)], seed=seed + n,
                                 origin=origin)
        if planned is not None and not np.allclose(s.affine, planned, atol=1e-4):
            raise RuntimeError(f"the writer's tilted geometry differs from the planned one:\n{s.affine}\n{planned}")
        out.append(s)
    return out


def run(out: "str | os.PathLike" = "gpukit-demo", *, workers: int | None = None, scale: float = 1.0,
        backend: str | None = None, stream=None) -> dict:
    """Write the study into ``out/dicom``, run the default recipe into ``out/results``; returns a summary."""
    import sys

    from .backends import resolve_name
    from .batch import load_recipe, run_batch

    from .ops.warm import warm_up

    stream = stream or sys.stdout
    out = Path(out)
    t0 = time.perf_counter()
    be = resolve_name(backend)
    # the kernels compile (first run after install) or load while the study is written; they land in Numba's
    # on-disk cache, where the batch workers find them instead of each compiling them again
    warm = warm_up(be, np.uint16)
    series = write_study(out / "dicom", scale=scale)
    if warm is not None:
        warm.join()
    t_write = time.perf_counter() - t0
    n_files = sum(len(s.files) for s in series)
    size = sum(f.stat().st_size for s in series for f in s.files)
    print(f"[1/2] wrote {len(series)} synthetic CT series ({n_files} DICOM files, {size / 2**20:.0f} MiB) "
          f"to {out / 'dicom'} in {t_write:.1f} s", file=stream)
    print(f"[2/2] running the default recipe on backend '{be}' (Dask LocalCluster) ...", file=stream, flush=True)
    t1 = time.perf_counter()
    res = run_batch(out / "dicom", out / "results", load_recipe(None), n_workers=workers, backend=be,
                    progress=True)
    t_batch = time.perf_counter() - t1
    print(f"      {len(res.records)} series in {t_batch:.1f} s; outcomes {res.counts}", file=stream)
    for r in res.records:
        t = r.get("timings_s", {})
        stages = ", ".join(f"{k} {t[k]:.2f} s" for k in ("read", "decode", "compute", "write") if k in t)
        print(f"      series {r.get('series_number')} {r.get('description')}: {r['status']}"
              + (f" ({stages})" if stages else f": {r.get('message')}"), file=stream)
        if r["status"] == "ok":
            folder = out / "results" / r["out_dir"]
            kinds = sorted({Path(o["path"]).suffix for o in r["outputs"]})
            print(f"        {len(r['outputs'])} outputs ({' '.join(kinds)}) in {folder}", file=stream)
    print(f"pictures and volumes: {out / 'results'}; manifest: {res.manifest_path}; "
          f"total {time.perf_counter() - t0:.1f} s", file=stream)
    return {"out": str(out), "write_s": t_write, "batch_s": t_batch, "counts": res.counts,
            "records": res.records, "manifest": res.manifest_path, "series": series}


__all__ = ["SERIES", "write_study", "run"]
