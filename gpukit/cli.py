"""The ``gpukit`` command line.

Exit codes: 0 success, 2 bad usage or bad input (a gpukit ValueError: not
DICOM, irregular series, ...), 3 environment problem (missing decoder or
backend), 1 anything else (an internal error: please report it).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3

EPILOG_INFO = """examples:
  gpukit info                      # version and compute backends
  gpukit info study/               # series table and geometry report
  gpukit info study/ --json        # the same, for machines
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
                print(f"  {b['name']:11} {state}")
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
  gpukit batch --print-default-recipe > my.toml
"""


def cmd_batch(args) -> int:
    from .batch import DEFAULT_RECIPE_TOML, load_recipe, run_batch

    if args.print_default_recipe:
        print(DEFAULT_RECIPE_TOML.strip())
        return EXIT_OK
    if not args.input or not args.output:
        print("gpukit batch: INPUT_ROOT and OUTPUT_ROOT are required", file=sys.stderr)
        return EXIT_BAD_INPUT
    recipe = load_recipe(args.recipe)    # validated before anything runs
    res = run_batch(args.input, args.output, recipe, scheduler=args.scheduler, n_workers=args.workers,
                    retry_failed=args.retry_failed, backend=args.backend, progress=not args.json)
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
    return EXIT_OK if res.ok else EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpukit", description="GPU-accelerated DICOM volume processing.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")
    pi = sub.add_parser("info", help="list series and their geometry, or the backends",
                        epilog=EPILOG_INFO, formatter_class=argparse.RawDescriptionHelpFormatter)
    pi.add_argument("path", nargs="?", help="a DICOM file or folder (walked recursively)")
    pi.add_argument("--json", action="store_true", help="machine-readable output")
    pi.set_defaults(func=cmd_info)
    pb = sub.add_parser("batch", help="run a recipe over every series under a folder, on Dask",
                        epilog=EPILOG_BATCH, formatter_class=argparse.RawDescriptionHelpFormatter)
    pb.add_argument("input", nargs="?", help="INPUT_ROOT: folder scanned recursively")
    pb.add_argument("output", nargs="?", help="OUTPUT_ROOT: outputs and manifest.jsonl")
    pb.add_argument("--recipe", help="TOML recipe (default: the built-in recipe)")
    pb.add_argument("--scheduler", help="address of an existing Dask scheduler (default: a LocalCluster)")
    pb.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per core)")
    pb.add_argument("--retry-failed", action="store_true", help="redo series that failed in an earlier run")
    pb.add_argument("--backend", help="compute backend (default: auto)")
    pb.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    pb.add_argument("--print-default-recipe", action="store_true", help="print the built-in recipe and exit")
    pb.set_defaults(func=cmd_batch)
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
