"""gpukit imports only downward: no import cycle among its modules, and ``import gpukit`` stays light.

The import graph is read from the source with :mod:`ast`, not by importing:
every ``import`` and ``from ... import`` statement of every module under
``gpukit/`` counts, wherever it stands (module level, inside a function, a
method, a ``try`` or an ``if``): a lazy import only delays the cycle, it is
still an upward dependency in the design.

The rule for the edges, ``A -> B`` ("A imports B"):

* ``import gpukit.x.y`` and ``from gpukit.x import y`` (relative forms
  resolved against A's package) are edges to ``gpukit.x.y`` when that is a
  module (a ``.py`` file or a package folder), otherwise ``from gpukit.x
  import name`` is an edge to ``gpukit.x`` itself (its ``__init__``), the
  module that has to be executed to provide ``name``. ``from pkg import *``
  is an edge to ``pkg``.
* Importing ``gpukit.x.y`` also executes the packages ``gpukit.x`` (and
  ``gpukit``) on the way; those are edges too, *except* the packages that
  contain A itself. Python always initialises A's own enclosing packages
  before A, so that implicit step is not a dependency of A's code.
* Hence a package ``__init__`` that imports (re-exports) its own children is
  not a cycle: ``gpukit -> gpukit.volume`` is an edge, and the child
  ``gpukit.volume`` reaching ``gpukit`` only by being inside it is not. A
  child that *explicitly* imports a name from its package ``__init__``
  (``from . import name`` where ``name`` is not a submodule, ``import gpukit``
  then ``gpukit.something``) does make the edge back, and that is a cycle:
  the child then depends on a partly initialised parent, which is the
  classic failure this test exists to catch.
* Only modules inside gpukit are nodes; everything else (numpy, pydicom,
  CuPy, ``benchmarks``) is ignored. Dynamic imports (``importlib``, the
  backend registry's module paths) are not seen.

A cycle fails the test with its module chain printed, one chain per strongly
connected component.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gpukit"


def _modules(pkg_dir: Path | None = None) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` under the package (``__init__`` names the package)."""
    pkg_dir = pkg_dir or PKG
    out = {}
    for path in sorted(pkg_dir.rglob("*.py")):
        rel = path.relative_to(pkg_dir.parent).with_suffix("")
        parts = list(rel.parts)
        if any(p.startswith(".") or p == "__pycache__" for p in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, mods: dict[str, Path]) -> bool:
    return name in mods and mods[name].name == "__init__.py"


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def _targets(mod: str, mods: dict[str, Path], tree: ast.AST) -> set[str]:
    """The gpukit modules ``mod`` imports (see the module docstring for the rule)."""
    package = mod if _is_package(mod, mods) else mod.rpartition(".")[0]
    direct: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                direct.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                direct.add(sub if alias.name != "*" and sub in mods else base)
    out: set[str] = set()
    own = set(_ancestors(mod)) | {mod}
    for t in direct:
        if t not in mods:                         # outside gpukit (or no such module: that import fails anyway)
            continue
        if t != mod:
            out.add(t)                            # named explicitly: always an edge, even to an own package
        out.update(a for a in _ancestors(t) if a not in own and a in mods)   # executed on the way
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = _targets(name, mods, tree)
    return graph


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def _shortest_cycle(graph: dict[str, set[str]], comp: list[str], start: str | None = None) -> list[str]:
    """A shortest cycle through ``start`` (default: the first module of ``comp``) inside the component ``comp``,
    as ``[a, b, ..., a]`` (breadth-first)."""
    members = set(comp)
    start = start or comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w not in seen:
                    seen.add(w)
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def import_cycles() -> list[list[str]]:
    """For every strongly connected component, a shortest cycle through each of its modules (duplicates removed)."""
    graph = import_graph()
    out: list[list[str]] = []
    seen: set[frozenset] = set()
    for comp in _components(graph):
        for m in comp:
            c = _shortest_cycle(graph, comp, m)
            key = frozenset(zip(c, c[1:]))
            if key not in seen:
                seen.add(key)
                out.append(c)
    return out


# -- the rule itself, on a small made-up package ---------------------------------------------------------------------
def _fake_graph(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    pkg = tmp_path / "gpukit"
    for rel, text in files.items():
        p = pkg / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    mods = _modules(pkg)
    return {n: _targets(n, mods, ast.parse(p.read_text())) for n, p in mods.items()}


def test_the_edge_rule_on_a_made_up_package(tmp_path):
    g = _fake_graph(tmp_path, {
        "__init__.py": "from .volume import Volume\ndef __getattr__(n):\n    from .ops import intensity\n",
        "volume.py": "from . import geometry\ndef hu(self):\n    from .ops.intensity import rescale\n",
        "geometry.py": "import numpy as np\n",
        "ops/__init__.py": "",
        "ops/intensity.py": "from ..volume import Volume\nfrom .. import geometry, __version__\n",
        "dicom/__init__.py": "",
        "dicom/load.py": "from .pixels import read\nfrom . import device\n",
        "dicom/device.py": "def f():\n    from .load import x\n",
        "dicom/pixels.py": "from ..errors import *\n",
        "errors.py": "",
    })
    assert g["gpukit"] == {"gpukit.volume", "gpukit.ops", "gpukit.ops.intensity"}   # re-exporting children
    assert g["gpukit.volume"] == {"gpukit.geometry", "gpukit.ops", "gpukit.ops.intensity"}  # lazy import counts
    # ``from .. import geometry`` is the module; ``__version__`` is a name of the package __init__: an edge to it
    assert g["gpukit.ops.intensity"] == {"gpukit.volume", "gpukit.geometry", "gpukit"}
    assert g["gpukit.dicom.load"] == {"gpukit.dicom.pixels", "gpukit.dicom.device"}
    assert g["gpukit.dicom.pixels"] == {"gpukit.errors"}
    # volume <-> ops.intensity (through a lazy import) with the child naming its parent, and load <-> device
    assert _components(g) == [["gpukit", "gpukit.ops.intensity", "gpukit.volume"],
                              ["gpukit.dicom.device", "gpukit.dicom.load"]]
    assert _shortest_cycle(g, ["gpukit.dicom.device", "gpukit.dicom.load"]) == \
        ["gpukit.dicom.device", "gpukit.dicom.load", "gpukit.dicom.device"]


def test_the_graph_covers_the_package_and_sees_lazy_imports():
    graph = import_graph()
    assert "gpukit" in graph and "gpukit.volume" in graph and "gpukit.dicom.load" in graph
    assert "gpukit.dicom.pixels" in graph["gpukit.dicom.device"]
    assert "gpukit.dicom.nvjpeg2k" in graph["gpukit.dicom.device"]          # imported inside a function
    assert "gpukit.dicom.api" in graph["gpukit"]                             # from the lazy __getattr__


# -- the package ------------------------------------------------------------------------------------------------------
def test_no_import_cycles_in_gpukit():
    cycles = import_cycles()
    report = "\n".join("  " + " -> ".join(c) for c in cycles)
    if cycles:
        print(f"\nimport cycles in gpukit ({len(cycles)}):\n{report}")
    assert not cycles, f"import cycles in gpukit (each line is one cycle; import only downward):\n{report}"


def test_import_gpukit_imports_neither_numba_nor_cupy(tmp_path):
    code = ("import sys, gpukit; heavy = [m for m in ('numba', 'cupy', 'cupy_backends', 'numba_cuda') "
            "if m in sys.modules]; print(','.join(heavy) or 'none')")
    env = {k: v for k, v in os.environ.items() if k != "GPUKIT_BACKEND"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "none", res.stdout
