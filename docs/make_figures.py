"""Make the README's pictures from the real scans in ../shared/data.

    python docs/make_figures.py            # writes docs/img/*.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import gpukit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "img"


def _win(hu, center, width):
    return np.clip((hu - (center - width / 2)) / width, 0, 1)


def tilted_geometry() -> Path:
    """Series 201 (gantry tilt -18.5 deg): the same mid-sagittal voxels drawn in index space and in patient space."""
    vol = gpukit.load(DATA / "ct_philips_tilt" / "In", series=201)
    hu = vol.hu().astype(np.float32)
    i = vol.shape[2] // 2
    sag = hu[:, :, i]                                   # (k, j)
    nk, nj = sag.shape
    # corners of every voxel in patient space (y: anterior-posterior, z: head-feet)
    jj, kk = np.meshgrid(np.arange(nj + 1) - 0.5, np.arange(nk + 1) - 0.5)
    pts = vol.index_to_world(np.stack([np.full_like(jj, i), jj, kk], axis=-1))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    ax[0].imshow(_win(sag, 40, 400), cmap="gray", origin="lower", aspect="auto")
    ax[0].set_title("array index space: data[k, j, i=256]")
    ax[0].set_xlabel("j (row index)")
    ax[0].set_ylabel("k (slice index)")
    ax[1].pcolormesh(pts[..., 1], pts[..., 2], _win(sag, 40, 400), cmap="gray", shading="flat")
    ax[1].set_aspect("equal")
    ax[1].set_title(f"patient space (LPS mm), sheared affine, tilt {vol.meta['tilt_deg']:.1f} deg")
    ax[1].set_xlabel("y (mm; anterior left, posterior right)")
    ax[1].set_ylabel("z (mm, head up)")
    fig.tight_layout()
    p = OUT / "tilt_geometry.png"
    fig.savefig(p, dpi=80)
    plt.close(fig)
    return p


def ct_slices() -> Path:
    vol = gpukit.load(DATA / "ct_philips_1mm" / "In")
    hu = vol.hu().astype(np.float32)
    nz, ny, nx = vol.shape
    dz, dy, dx = vol.spacing
    fig, ax = plt.subplots(1, 3, figsize=(12, 4.2))
    ax[0].imshow(_win(hu[nz // 2], 40, 120), cmap="gray")
    ax[0].set_title(f"axial k={nz // 2} (brain window)")
    ax[1].imshow(_win(hu[:, ny // 2, :], 40, 120), cmap="gray", origin="lower", aspect=dz / dx)
    ax[1].set_title(f"coronal j={ny // 2}")
    ax[2].imshow(_win(hu[:, :, nx // 2], 400, 1800), cmap="gray", origin="lower", aspect=dz / dy)
    ax[2].set_title(f"sagittal i={nx // 2} (bone window)")
    for a in ax:
        a.axis("off")
    fig.suptitle("ct_philips_1mm: gpukit.load(...).hu(), array cross-sections with true aspect")
    fig.tight_layout()
    p = OUT / "ct_slices.png"
    fig.savefig(p, dpi=80)
    plt.close(fig)
    return p


def operations() -> Path:
    """The operations on real scans: oblique reslice, slab and full MIP, MinIP, and a tilted series made regular."""
    from gpukit import Plane
    from gpukit.render import display, plane_for, to_square_pixels

    vol = gpukit.load(DATA / "ct_philips_1mm" / "In")
    obl = gpukit.reslice(vol, plane_for(vol, "oblique", angles_deg=(20, 30, 0)))
    slab = gpukit.project(vol, Plane.axial(vol).moved(10.0), mode="max", thickness_mm=20)
    cor = to_square_pixels(display(gpukit.project(vol, "coronal", mode="max"), (600, 2400)), vol, "coronal")
    minip = gpukit.project(vol, Plane.axial(vol), mode="min", thickness_mm=10)
    tilt = gpukit.load(DATA / "ct_philips_tilt" / "In", series=201)
    reg = gpukit.regularize(tilt)
    sag_before = gpukit.reslice(tilt, plane_for(tilt, "sagittal"))
    sag_after = gpukit.reslice(reg, plane_for(reg, "sagittal"))
    panels = [
        (display(obl, "bone"), "reslice: oblique plane (20, 30, 0) deg, bone"),
        (display(slab, "bone"), "project: 20 mm axial slab MIP, bone"),
        (cor, "project: full coronal MIP (exact fast path)"),
        (display(minip, "lung"), "project: 10 mm axial MinIP, lung"),
        (display(sag_before, (40, 400)), "tilted series 201: sagittal reslice"),
        (display(sag_after, (40, 400)), "after gpukit.regularize (dcm2niix's grid)"),
    ]
    fig, ax = plt.subplots(2, 3, figsize=(12, 8.4))
    for a, (img, title) in zip(ax.ravel(), panels):
        a.imshow(img, cmap="gray", vmin=0, vmax=255)
        a.set_title(title, fontsize=9)
        a.axis("off")
    fig.tight_layout()
    p = OUT / "operations.png"
    fig.savefig(p, dpi=72)
    plt.close(fig)
    return p


def slice_order() -> Path:
    """A 20 mm oblique slab MIP of the real CT in ray order (the reference) and in slice order (shear-warp),
    and their difference."""
    import time

    from gpukit.render import display, plane_for

    vol = gpukit.load(DATA / "ct_philips_1mm" / "In")
    plane = plane_for(vol, "oblique", angles_deg=(20, 30, 15))
    imgs, secs = {}, {}
    for order in ("ray", "slice"):
        gpukit.project(vol, plane, thickness_mm=20, order=order, backend="numba")      # compile / load first
        times = []
        for _ in range(7):                                      # the median of 7 calls
            t0 = time.perf_counter()
            imgs[order] = gpukit.project(vol, plane, thickness_mm=20, order=order, backend="numba")
            times.append(time.perf_counter() - t0)
        secs[order] = float(np.median(times))
    diff = imgs["slice"].astype(np.float64) - imgs["ray"]
    fig, ax = plt.subplots(1, 3, figsize=(12, 4.4))
    for a, order in zip(ax, ("ray", "slice")):
        a.imshow(display(imgs[order], "bone"), cmap="gray", vmin=0, vmax=255)
        a.set_title(f"order=\"{order}\": {secs[order] * 1e3:.1f} ms (median of 7)", fontsize=9)
    im = ax[2].imshow(diff, cmap="RdBu_r", vmin=-100, vmax=100)
    ax[2].set_title(f"slice - ray (HU): median |d| {np.median(np.abs(diff)):.2f}, "
                    f"p99 {np.percentile(np.abs(diff), 99):.0f}", fontsize=9)
    fig.colorbar(im, ax=ax[2], fraction=0.046)
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    p = OUT / "slice_order.png"
    fig.savefig(p, dpi=72)
    plt.close(fig)
    return p


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for fn in (ct_slices, tilted_geometry, operations, slice_order):
        print(fn())
