"""The ``gpukit`` command line.

Exit codes: 0 success, 2 bad usage or bad input (a gpukit ValueError: not
DICOM, irregular series, ...), 3 environment problem (missing decoder or
backend), 4 (``gpukit batch``) the output cannot be written: the disk is full
or read-only (one line naming the file), 1 anything else (an internal error:
please report it).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .backends import REGISTRY
from .backends.codes import PROJECTION_MODES

#: the names ``--backend`` takes (the registry's, and auto)
BACKEND_CHOICES = ("auto", *REGISTRY)

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3

EPILOG_INFO = """examples:
  gpukit info                      # version and compute backends
  gpukit info study/               # series table and geometry report
  gpukit info study/ --json        # the same, for machines
  gpukit info 'https://pacs/dicom-web?Modality=CT&StudyDate=20240101-'   # DICOMweb: metadata only, no pixels
"""


def _geometry_report(info) -> dict:
    from .dicom.load import series_geometry
    from . import geometry

    out: dict = {"id": info.id}
    try:
        frames, aff, gmeta = series_geometry(list(info.frames), on_irregular="keep")
    except Exception as exc:  # report, don't stop the listing
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    f0 = frames[0]
    out.update({
        "shape_kji": [len(frames), info.rows, info.columns],
        "affine_lps": np.round(aff, 6).tolist(),
        "voxel_mm_ijk": np.round(geometry.voxel_sizes(aff), 6).tolist(),
        "orientation": info.orientation,
        "tilt_deg": round(geometry.tilt_angle_deg(aff), 4),
        "gantry_tilt_tag": f0.header.get("GantryDetectorTilt"),
        "regular": bool(gmeta.get("regular", True)),
        "spacing_report": gmeta.get("spacing_report"),
        "note": gmeta.get("geometry_note", ""),
        "rescale": sorted({(f.slope, f.intercept) for f in frames})[:4],
        "transfer_syntax": f0.header.transfer_syntax,
    })
    return out


def cmd_info(args) -> int:
    import gpukit
    from .backends import backend_report, resolve_name

    if not args.path:
        rep = {"version": gpukit.__version__, "backend": resolve_name(), "backends": backend_report()}
        if args.json:
            print(json.dumps(rep, indent=2))
        else:
            print(f"gpukit {rep['version']}; operations run on backend '{rep['backend']}' "
                  f"(set with --backend, GPUKIT_BACKEND or gpukit.set_backend)")
            for b in rep["backends"]:
                state = "available" if b["available"] else "unavailable: " + "; ".join(b["missing"])
                where = b["location"] + ("" if b["auto"] else ", test stand-in, never auto")
                caps = ", ".join(b["capabilities"]) or "-"
                print(f"  {b['name']:11} {where:34} {state}\n  {'':11} capabilities: {caps}")
        return EXIT_OK
    found = gpukit.scan(args.path)
    geo = [_geometry_report(s) for s in found if s.kind == "volume"]
    if args.json:
        d = found.to_dict()
        d["geometry"] = geo
        print(json.dumps(d, indent=2, default=str))
        return EXIT_OK
    print(found.table())
    for g in geo:
        print(f"\ngeometry of {g['id']}:")
        if "error" in g:
            print(f"  error: {g['error']}")
            continue
        print(f"  shape (k, j, i): {tuple(g['shape_kji'])}, voxel (i, j, k) mm: {tuple(g['voxel_mm_ijk'])}")
        print(f"  orientation: {g['orientation']}, tilt from positions: {g['tilt_deg']} deg "
              f"(Gantry/Detector Tilt tag: {g['gantry_tilt_tag']})")
        print(f"  spacing: {g['spacing_report']['summary']}" + ("" if g["regular"] else "  [IRREGULAR]"))
        if g["note"]:
            print(f"  note: {g['note']}")
        print("  affine (LPS mm; index (i, j, k) -> position):")
        for row in g["affine_lps"][:3]:
            print("    [" + "  ".join(f"{x:11.5f}" for x in row) + "]")
    return EXIT_OK


EPILOG_BATCH = """examples:
  gpukit batch archive/ results/                         # default recipe, LocalCluster, one worker per core
  gpukit batch archive/ results/ --recipe chest.toml --workers 2
  gpukit batch archive/ results/ --scheduler tcp://10.0.0.5:8786
  gpukit batch archive/ results/ --retry-failed          # rerun: skips finished series, redoes failed ones
  gpukit batch https://pacs/dicom-web results/ --modality CT --date 20240101-   # series from a PACS
  gpukit batch https://pacs/dicom-web results/ --stow https://pacs/dicom-web      # results stored back
  gpukit batch --print-default-recipe > my.toml
"""


#: ``gpukit batch``: the output root cannot take the outputs or the manifest (disk full, read-only)
EXIT_OUTPUT = 4


def cmd_batch(args) -> int:
    """Run a recipe over a folder. Exit 0 all done; 2 a series failed on its input (or a bad recipe, an
    unknown backend); 3 the backend cannot run here; 4 the output is full or read-only (one line naming it)."""
    from .batch import DEFAULT_RECIPE_TOML, OutputWriteError, load_recipe, run_batch

    if args.print_default_recipe:
        print(DEFAULT_RECIPE_TOML.strip())
        return EXIT_OK
    if not args.input or not args.output:
        print("gpukit batch: INPUT_ROOT and OUTPUT_ROOT are required", file=sys.stderr)
        return EXIT_BAD_INPUT
    recipe = load_recipe(args.recipe)    # validated before anything runs
    try:
        bad = [f for f in args.filter or [] if "=" not in f.strip("=")]
        if bad:
            print(f"gpukit batch: --filter takes KEY=VALUE (a QIDO matching key), got {bad[0]!r}", file=sys.stderr)
            return EXIT_BAD_INPUT
        query = {"modality": args.modality, "date": args.date,
                 "filters": dict(f.split("=", 1) for f in args.filter or []) or None}
        res = run_batch(args.input, args.output, recipe, scheduler=args.scheduler, n_workers=args.workers,
                        retry_failed=args.retry_failed, backend=args.backend, progress=not args.json,
                        query=query, stow=args.stow)
    except OutputWriteError as exc:    # the manifest (or the output root) cannot be written: stop, say where
        print(f"gpukit batch: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    summary = {"output_root": res.output_root, "manifest": res.manifest_path, "counts": res.counts,
               "already_done": res.skipped_done, "processed": len(res.records), "wall_s": round(res.wall_s, 3)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{len(res.records)} series processed in {res.wall_s:.1f} s ({res.skipped_done} already done); "
              f"outcomes: {res.counts}")
        for r in res.records:
            if r.get("status") != "ok":
                print(f"  failed {r['key']}: {r.get('error')}: {r.get('message')}")
        print(f"manifest: {res.manifest_path}")
    if any(r.get("status") != "ok" and r.get("kind") == "output" for r in res.records):
        full = next(r for r in res.records if r.get("status") != "ok" and r.get("kind") == "output")
        print(f"gpukit batch: {full.get('message')}", file=sys.stderr)
        return EXIT_OUTPUT
    return EXIT_OK if res.ok else EXIT_BAD_INPUT


EPILOG_RENDER = """examples:
  gpukit render ct/ --window lung --out pics/                       # axial, coronal, sagittal at the centre
  gpukit render ct/ --plane axial --index 70 --window=-600,1500 --out pics/
  gpukit render ct/ --plane oblique --angles 20 30 0 --window bone --out pics/
  gpukit render ct/ --plane oblique --normal 0 1 1 --out pics/      # the file's own window
  gpukit render study/ --series 201 --plane sagittal --out pics/ --json
"""

EPILOG_MIP = """examples:
  gpukit mip ct/ --out pics/                                         # full axial MIP
  gpukit mip ct/ --plane coronal --mode min --window lung --out pics/
  gpukit mip ct/ --plane axial --thickness 20 --position 10 --window lung --out pics/   # 20 mm slab
  gpukit mip ct/ --plane oblique --angles 20 30 15 --thickness 20 --order slice --out pics/   # shear-warp
  gpukit mip ct/ --plane oblique --angles 0 0 30 --out pics/
  gpukit mip ct/ --rotate 36 --axis z --out pics/                    # rotating MIP as an animated GIF
"""


def _load_for_picture(args):
    import gpukit

    # a device backend reads the series straight to the device (resident: every picture is computed there and
    # only the uint8 image comes back); a host backend becomes the volume's default
    vol = gpukit.load(args.path, series=_series_arg(args.series), on_irregular="keep", backend=args.backend)
    if args.backend and vol.backend is None:
        vol.backend = args.backend
    return vol


def _shown(path: str) -> str:
    """A path as printed: a DICOMweb URL without its ``user:password@``."""
    from .dicomweb.auth import split_userinfo

    return split_userinfo(path)[0] if path.lower().startswith(("http://", "https://")) else path


def _series_arg(text):
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def _picture_name(vol, stem: str) -> str:
    num = vol.meta.get("series_number")
    tag = f"s{num}" if num not in (None, "") else "series"
    return f"{tag}_{stem}"


def _plane_args(vol, args, name: str, position=None):
    """The plane the command line describes (name, position or index, angles or normal/up, spacing)."""
    from .render import plane_for

    return plane_for(vol, name, position_mm=position, index=getattr(args, "index", None),
                     angles_deg=args.angles, normal=args.normal, up=args.up, spacing=args.spacing)


def _report(args, outputs: list[dict]) -> None:
    if args.json:
        print(json.dumps({"outputs": outputs}, indent=2))
    else:
        for o in outputs:
            print(f"wrote {o['path']}  ({o['what']}, {o['shape'][1]}x{o['shape'][0]} px, {o['seconds'] * 1e3:.0f} ms)")


def cmd_render(args) -> int:
    import os
    import time

    import gpukit
    from .batch.writers import write_png
    from .render import display, parse_window

    vol = _load_for_picture(args)
    names = [n.strip() for n in args.plane.split(",") if n.strip()]
    win = parse_window(args.window)
    outputs = []
    for name in names:
        t0 = time.perf_counter()
        plane = _plane_args(vol, args, name, args.position)
        img = gpukit.reslice(vol, plane, interp=args.interp)
        pix = display(img, win, vol)
        path = write_png(os.path.join(args.out, _picture_name(vol, name) + ".png"), pix)
        outputs.append({"path": path, "what": f"{name} reslice", "shape": list(pix.shape),
                        "seconds": time.perf_counter() - t0, "iop": plane.iop(),
                        "center_lps": [float(x) for x in plane.center]})
    _report(args, outputs)
    return EXIT_OK


def cmd_mip(args) -> int:
    import os
    import time

    import gpukit
    from .batch.writers import write_gif, write_png
    from .render import display, parse_window

    vol = _load_for_picture(args)
    # a projection piles up the brightest (or darkest) tissue: the file's reading window saturates it, so the
    # default is the projection's own range
    win = parse_window(args.window) if args.window else "auto"
    t0 = time.perf_counter()
    if args.rotate:
        frames = gpukit.rotating_mip(vol, args.rotate, axis=args.axis, mode=args.mode, spacing=args.spacing)
        pix = display(frames, win, vol, projection=True)
        path = write_gif(os.path.join(args.out, _picture_name(vol, f"rotating_{args.mode}ip") + ".gif"), pix,
                         fps=args.fps)
        out = {"path": path, "what": f"rotating {args.mode} projection, {args.rotate} frames about {args.axis}",
               "shape": list(pix.shape[1:]), "seconds": time.perf_counter() - t0}
    elif args.plane != "oblique" and args.position is None and args.spacing is None:
        # the named projection: over the stored voxels themselves when the volume's axes lie along the patient's
        # (exact and bandwidth-bound), else the sampler; shown with square pixels
        from .render import to_square_pixels

        img = gpukit.project(vol, args.plane, mode=args.mode, thickness_mm=args.thickness, interp=args.interp,
                             order=args.order)
        pix = to_square_pixels(display(img, win, vol, projection=True), vol, args.plane)
    else:
        plane = _plane_args(vol, args, args.plane, args.position)
        img = gpukit.project(vol, plane, mode=args.mode, thickness_mm=args.thickness, interp=args.interp,
                             order=args.order)
        pix = display(img, win, vol, projection=True)
    if not args.rotate:
        stem = f"{args.plane}_{args.mode}ip" + (f"_slab{args.thickness:g}mm" if args.thickness else "")
        path = write_png(os.path.join(args.out, _picture_name(vol, stem) + ".png"), pix)
        out = {"path": path, "shape": list(pix.shape), "seconds": time.perf_counter() - t0,
               "what": f"{args.plane} {args.mode} projection" +
                       (f", {args.thickness:g} mm slab" if args.thickness else ", full volume")}
    _report(args, [out])
    return EXIT_OK


def _bench_main():
    """The benchmark suite's ``main``, or None when there is no suite here.

    An installed wheel ships the suite inside the package as ``gpukit._benchmarks``; a source
    checkout has it as the top-level ``benchmarks/`` folder next to ``gpukit/`` (imported under
    that name, as ``python -m benchmarks`` does, wherever the command runs from).
    """
    import importlib
    from pathlib import Path

    try:
        from ._benchmarks.__main__ import main
        return main
    except ModuleNotFoundError as exc:
        if exc.name not in (f"{__package__}._benchmarks", f"{__package__}._benchmarks.__main__"):
            raise
    suite = Path(__file__).resolve().parent.parent / "benchmarks"
    if not (suite / "__main__.py").is_file():
        return None
    if str(suite.parent) not in sys.path:
        sys.path.insert(0, str(suite.parent))
    mod = importlib.import_module("benchmarks.__main__")
    if Path(mod.__file__).resolve().parent != suite:
        print(f"gpukit bench: another package named 'benchmarks' ({mod.__file__}) hides the suite in {suite}",
              file=sys.stderr)
        return None
    return mod.main


def cmd_bench(args) -> int:
    bench_main = _bench_main()
    if bench_main is None:
        print("gpukit bench: the benchmark suite is not installed here (it ships inside the gpukit wheel as "
              "gpukit/_benchmarks, and as benchmarks/ in a source checkout: python -m benchmarks)", file=sys.stderr)
        return EXIT_ENVIRONMENT
    argv = (["--quick"] if args.quick else []) + (["--sections", args.sections] if args.sections else []) + \
        ["--out", args.out]
    return int(bench_main(argv) or 0)


def cmd_demo(args) -> int:
    from .demo import run as run_demo

    res = run_demo(args.out, workers=args.workers, backend=args.backend, scale=args.scale)
    return EXIT_OK if res["counts"].get("failed", 0) == 0 else EXIT_INTERNAL


EPILOG_VIEW = """examples:
  gpukit view ct/                                  # prints the URL (with its token) and serves until Ctrl-C
  gpukit view study/ --series 201 --open           # and opens it in the default browser
  gpukit view ct/ --backend numba --port 8765 --window lung
  gpukit view https://pacs/dicom-web/studies/1.2.3 --series 201    # over DICOMweb (cached locally)
"""


def cmd_view(args) -> int:
    """Serve the viewer of one series until Ctrl-C (``gpukit.view``)."""
    import time

    try:
        import aiohttp  # noqa: F401
    except ImportError:
        from .errors import EnvironmentProblem

        raise EnvironmentProblem("gpukit view needs aiohttp: pip install aiohttp") from None
    import gpukit
    from .render import parse_window
    from .view import ViewServer

    t0 = time.perf_counter()
    print(f"[1/3] reading {_shown(args.path)} ...", file=sys.stderr, flush=True)
    vol = gpukit.load(args.path, series=_series_arg(args.series), on_irregular="keep", backend=args.backend)
    nz, ny, nx = vol.shape
    print(f"      {nz} slices of {nx}x{ny} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    t1 = time.perf_counter()
    print("[2/3] preparing the renderer (volume resident on the backend, kernels compiled or loaded) ...",
          file=sys.stderr, flush=True)
    win = parse_window(args.window)
    srv = ViewServer(vol, backend=args.backend, host=args.host, port=args.port, window=win, lossy=args.lossy)
    print(f"      backend '{srv.backend}' ready in {time.perf_counter() - t1:.1f} s", file=sys.stderr, flush=True)
    try:
        srv.start()
    except OSError as exc:      # the port is taken, the address is not this machine's
        print(f"gpukit view: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"[3/3] serving {srv.title} (Ctrl-C stops)", file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"      note: bound to {args.host}: reachable from other machines (the token is still required)",
              file=sys.stderr, flush=True)
    print(srv.url, flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(srv.url)
    srv.serve_forever()
    return EXIT_OK


def _picture_options(p, what: str) -> None:
    p.add_argument("path", help="a DICOM file or folder")
    p.add_argument("--series", help="series number or UID when the folder holds several")
    p.add_argument("--out", required=True, help="folder for the pictures (created; files written atomically)")
    p.add_argument("--window", help="preset name (lung, mediastinum, soft_tissue, bone, brain, subdural, stroke, "
                                    "liver, ...), CENTER,WIDTH (write --window=-600,1500 for a negative centre), "
                                    "or auto (the image's 0.5-99.5 percentile range); default: render the file's "
                                    "window (else auto), mip auto")
    p.add_argument("--position", type=float, help=f"{what} position in mm: LPS z (axial), y (coronal), x (sagittal), "
                                                   "or along the normal from the centre (oblique)")
    p.add_argument("--angles", type=float, nargs=3, metavar=("RX", "RY", "RZ"),
                   help="oblique: rotate the axial plane about x, y, z (degrees)")
    p.add_argument("--normal", type=float, nargs=3, metavar=("X", "Y", "Z"), help="oblique: the plane normal (LPS)")
    p.add_argument("--up", type=float, nargs=3, metavar=("X", "Y", "Z"), help="oblique: the image's up direction")
    p.add_argument("--spacing", type=float, help="pixel size in mm (default: the smallest voxel size)")
    p.add_argument("--interp", choices=("linear", "nearest"), default="linear")
    p.add_argument("--backend", choices=BACKEND_CHOICES, help="compute backend (default: auto)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpukit", description="GPU-accelerated DICOM volume processing.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")
    pi = sub.add_parser("info", help="list series and their geometry, or the backends",
                        epilog=EPILOG_INFO, formatter_class=argparse.RawDescriptionHelpFormatter)
    pi.add_argument("path", nargs="?", help="a DICOM file or folder (walked recursively), or a DICOMweb URL "
                                            "(server root, study or series URL; QIDO keys as ?Modality=CT&...)")
    pi.add_argument("--json", action="store_true", help="machine-readable output")
    pi.set_defaults(func=cmd_info)
    pb = sub.add_parser("batch", help="run a recipe over every series under a folder, on Dask",
                        epilog=EPILOG_BATCH, formatter_class=argparse.RawDescriptionHelpFormatter)
    pb.add_argument("input", nargs="?", help="INPUT_ROOT: folder scanned recursively, or a DICOMweb URL (server "
                                             "root, study or series URL; QIDO keys as ?Modality=CT&...)")
    pb.add_argument("output", nargs="?", help="OUTPUT_ROOT: outputs and manifest.jsonl")
    pb.add_argument("--recipe", help="TOML recipe (default: the built-in recipe)")
    pb.add_argument("--scheduler", help="address of an existing Dask scheduler (default: a LocalCluster)")
    pb.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per core)")
    pb.add_argument("--retry-failed", action="store_true", help="redo series that failed in an earlier run")
    pb.add_argument("--backend", help="compute backend (default: auto)")
    pb.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    pb.add_argument("--print-default-recipe", action="store_true", help="print the built-in recipe and exit")
    pb.add_argument("--modality", help="DICOMweb input: QIDO Modality filter (e.g. CT)")
    pb.add_argument("--date", help="DICOMweb input: StudyDate or range (20240101-, 20240101-20241231)")
    pb.add_argument("--filter", action="append", metavar="KEY=VALUE",
                    help="DICOMweb input: another QIDO matching key (repeatable), e.g. PatientID=X")
    pb.add_argument("--stow", metavar="URL", help="store a derived series (regular grid) and a coronal MIP of "
                                                  "each finished series on this DICOMweb server (STOW-RS)")
    pb.set_defaults(func=cmd_batch)
    pr = sub.add_parser("render", help="write windowed reslices (axial, coronal, sagittal, oblique) as PNG",
                        epilog=EPILOG_RENDER, formatter_class=argparse.RawDescriptionHelpFormatter)
    _picture_options(pr, "plane")
    pr.add_argument("--plane", default="axial,coronal,sagittal",
                    help="comma list of axial, coronal, sagittal, oblique (default: the first three)")
    pr.add_argument("--index", type=float, help="instead of --position: the voxel index along the plane's axis")
    pr.set_defaults(func=cmd_render)
    pm = sub.add_parser("mip", help="write a maximum/minimum/mean projection (full, slab or rotating) as PNG/GIF",
                        epilog=EPILOG_MIP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _picture_options(pm, "slab centre")
    pm.add_argument("--plane", default="axial", choices=("axial", "coronal", "sagittal", "oblique"))
    pm.add_argument("--mode", default="max", choices=PROJECTION_MODES)
    pm.add_argument("--thickness", type=float, help="slab thickness in mm (default: the whole volume)")
    pm.add_argument("--order", default="ray", choices=("ray", "slice"),
                    help="ray (default: march each ray, the reference) or slice (shear-warp: faster on the CPU, a "
                         "close approximation; see README)")
    pm.add_argument("--rotate", type=int, metavar="N", help="a rotating projection of N frames, as an animated GIF")
    pm.add_argument("--axis", default="z", choices=("x", "y", "z"), help="rotation axis for --rotate (default z)")
    pm.add_argument("--fps", type=float, default=12.0, help="GIF frames per second")
    pm.set_defaults(func=cmd_mip)
    pd = sub.add_parser("demo", help="the main job on a fresh machine: synthetic CT study, default recipe, pictures",
                        epilog="examples:\n  gpukit demo\n  gpukit demo --out /tmp/demo --workers 2\n",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pd.add_argument("--out", default="gpukit-demo", help="folder for the DICOM study and the results "
                                                         "(default ./gpukit-demo)")
    pd.add_argument("--workers", type=int, help="Dask worker processes (default: one per core)")
    pd.add_argument("--backend", choices=BACKEND_CHOICES, help="compute backend (default: auto, the best available)")
    pd.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)   # smaller study, for tests
    pd.set_defaults(func=cmd_demo)
    pv = sub.add_parser("view", help="serve a browser viewer of one series (3 linked orthogonal views + oblique)",
                        epilog=EPILOG_VIEW, formatter_class=argparse.RawDescriptionHelpFormatter)
    pv.add_argument("path", help="a DICOM file or folder, or a DICOMweb URL (credentials: GPUKIT_DICOMWEB_TOKEN, "
                                 "or GPUKIT_DICOMWEB_USER and GPUKIT_DICOMWEB_PASSWORD)")
    pv.add_argument("--series", help="series number or UID when the folder holds several")
    pv.add_argument("--backend", choices=BACKEND_CHOICES, help="compute backend (default: auto, a GPU where there is one)")
    pv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    pv.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    pv.add_argument("--window", help="initial window: preset name, CENTER,WIDTH (--window=-600,1500) or auto "
                                         "(default: the file's own)")
    pv.add_argument("--lossy", choices=("jpeg", "webp"), default="jpeg", help="frame format while a view moves")
    pv.add_argument("--open", action="store_true", help="open the URL in the default browser")
    pv.set_defaults(func=cmd_view)
    pz = sub.add_parser("bench", help="run the benchmark suite (shipped in the wheel; benchmarks/ in a checkout)")
    pz.add_argument("--quick", action="store_true", help="smallest sizes (what the tests run)")
    pz.add_argument("--sections", help="comma list of load, intensity, sampling, batch, gpu (default: all)")
    pz.add_argument("--out", default="bench-out", help="folder for results.json and plots")
    pz.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    from .errors import EnvironmentProblem, GpukitError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return EXIT_OK
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except EnvironmentProblem as exc:
        print(f"gpukit: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except (GpukitError, FileNotFoundError) as exc:
        print(f"gpukit: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("gpukit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # output piped into e.g. `head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
