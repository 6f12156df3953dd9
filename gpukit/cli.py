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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
