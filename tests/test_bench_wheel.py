"""``gpukit bench`` from an installed wheel: the suite ships as ``gpukit/_benchmarks`` and runs without the checkout.

The wheel is built here without build isolation (hatchling, in the test
extra), unpacked into a temporary folder, and the console script's entry point
(read from the wheel's own ``entry_points.txt``) runs in a fresh interpreter
whose working directory is another temporary folder, with ``PYTHONPATH`` naming
only the unpacked wheel. An editable install of the checkout puts the checkout
on ``sys.path`` through a ``.pth`` file; the subprocess removes that entry before
importing anything from gpukit, and checks that no ``benchmarks`` package can be
found at all, so the suite that runs is the shipped one.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# runs the console script's entry point with the checkout off sys.path; prints where everything came from
BOOT = r"""
import importlib, importlib.util, json, os, sys
checkout = os.path.realpath(sys.argv[1])
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != checkout]
assert importlib.util.find_spec("benchmarks") is None, importlib.util.find_spec("benchmarks").origin
module, func = sys.argv[2].split(":")
sys.argv = ["gpukit"] + sys.argv[3:]
try:
    rc = getattr(importlib.import_module(module), func)()
except SystemExit as exc:          # argparse's --help
    rc = exc.code
where = {k: getattr(m, "__file__", None) for k, m in sorted(sys.modules.items())
         if k == "gpukit" or k.startswith("gpukit._benchmarks") or k.split(".")[0] == "benchmarks"}
print("WHERE " + json.dumps(where))
sys.exit(rc)
"""


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    pytest.importorskip("hatchling", reason="hatchling (the build backend, in the test extra) is not installed")
    tmp = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-c", "import sys, hatchling.build as b; print(b.build_wheel(sys.argv[1]))",
                          str(tmp)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    wheel = tmp / res.stdout.strip().splitlines()[-1]
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    return site, names


def _gpukit(site: Path, cwd: Path, *args: str, timeout: int = 600) -> tuple[subprocess.CompletedProcess, dict]:
    eps = configparser.ConfigParser()
    eps.read(next(site.glob("gpukit-*.dist-info")) / "entry_points.txt")
    entry = eps["console_scripts"]["gpukit"]
    env = {k: v for k, v in os.environ.items() if k not in ("GPUKIT_BACKEND", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(site)
    env["MPLBACKEND"] = "Agg"
    res = subprocess.run([sys.executable, "-c", BOOT, str(ROOT), entry, *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("WHERE ")]
    return res, (json.loads(lines[-1][len("WHERE "):]) if lines else {})


def test_the_wheel_ships_the_benchmark_suite(unpacked_wheel):
    site, names = unpacked_wheel
    want = sorted(f"gpukit/_benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py"))
    shipped = sorted(n for n in names if n.startswith("gpukit/_benchmarks/"))
    assert shipped == want, (shipped, want)
    assert "gpukit/_benchmarks/__main__.py" in shipped and not any(n.startswith("benchmarks/") for n in names)
    # the suite imports itself relatively (it lives under two names): no absolute ``benchmarks.`` import
    for n in shipped:
        text = (site / n).read_text()
        assert "from benchmarks" not in text and "import benchmarks" not in text and '"benchmarks.' not in text, n


def test_gpukit_bench_help_from_the_wheel(unpacked_wheel, tmp_path):
    site, _ = unpacked_wheel
    res, where = _gpukit(site, tmp_path, "bench", "--help", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "--quick" in res.stdout and "--sections" in res.stdout
    assert where["gpukit"].startswith(str(site)), where


def test_gpukit_bench_quick_section_runs_from_the_wheel(unpacked_wheel, tmp_path):
    """The quickest section (intensity, a few seconds at its quick size) end to end: table, results.json."""
    site, _ = unpacked_wheel
    out = tmp_path / "bench-out"
    res, where = _gpukit(site, tmp_path, "bench", "--quick", "--sections", "intensity", "--out", str(out))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert where["gpukit"].startswith(str(site)), where
    suite = {k: v for k, v in where.items() if k != "gpukit"}
    assert "gpukit._benchmarks.__main__" in suite and "gpukit._benchmarks.bench_intensity" in suite, where
    assert all(v.startswith(str(site / "gpukit" / "_benchmarks")) for v in suite.values()), where
    assert not any(k.split(".")[0] == "benchmarks" for k in where), where
    result = json.loads((out / "results.json").read_text())
    assert result["quick"] is True and result["skipped"] == {}, result["skipped"]
    rows = result["rows"]
    assert rows and all(r["median_s"] > 0 for r in rows)
    assert {r["op"] for r in rows} and any("gpukit" in r["impl"] for r in rows), [r["impl"] for r in rows]


def test_gpukit_bench_in_a_source_checkout_uses_the_top_level_benchmarks_folder():
    from gpukit.cli import _bench_main

    main = _bench_main()
    assert main is not None
    assert Path(sys.modules[main.__module__].__file__).resolve().parent == ROOT / "benchmarks"
