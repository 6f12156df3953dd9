"""Recipes: what to produce for every series of a batch, read from TOML and validated up front.

A recipe is a list of outputs::

    [recipe]
    name = "chest"

    [[output]]
    name = "axial_mip_slabs"     # file name stem (unique in the recipe)
    kind = "slab_mips"           # see KINDS below
    plane = "axial"
    thickness_mm = 10
    step_mm = 10
    window = "lung"              # a preset name, or [center, width], for every series
    ct_window = "lung"           # the same, for CT series only (overrides window there)

With no window for a series, a slice gets the file's own window (else a robust
percentile window) and a projection a percentile window of its own histogram.

Every key is checked before any series is touched: an unknown kind or key, a
wrong type, an unknown window preset or a missing optional package raises
:class:`RecipeError` naming the recipe file, the output and the key.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from ..backends.codes import PROJECTION_MODES
from ..errors import GpukitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class RecipeError(GpukitError, ValueError):
    """A recipe that cannot be run: names the file, the output and the key."""


PLANES = ("axial", "coronal", "sagittal")
FORMATS_2D = ("png", "npy")
FORMATS_VOL = ("nifti", "npy", "zarr")

#: kind -> (allowed keys with their types and defaults, allowed formats)
KINDS: dict[str, tuple[dict[str, tuple[tuple, Any]], tuple[str, ...]]] = {
    # the loaded volume as it is (stored values and exact affine, or HU)
    "volume": ({"hu": ((bool,), False)}, FORMATS_VOL),
    # resampled onto an isotropic axis-aligned grid (also straightens tilted series)
    "resample": ({"spacing_mm": ((int, float), 1.0), "interp": ((str,), "linear")}, FORMATS_VOL),
    # one windowed plane through the volume centre
    "reslice": ({"plane": ((str,), "axial"), "window": ((str, list), None), "ct_window": ((str, list), None),
                 "offset_mm": ((int, float), 0.0),
                 "interp": ((str,), "linear")}, FORMATS_2D),
    # full projection along an axis
    "mip": ({"plane": ((str,), "coronal"), "mode": ((str,), "max"), "window": ((str, list), None),
             "ct_window": ((str, list), None)}, FORMATS_2D),
    # thick-slab projections every step_mm along the plane's normal
    "slab_mips": ({"plane": ((str,), "axial"), "mode": ((str,), "max"), "thickness_mm": ((int, float), 10.0),
                   "step_mm": ((int, float), 10.0), "window": ((str, list), None), "ct_window": ((str, list), None)},
                  FORMATS_2D),
    # a turntable of MIPs around an axis, as an animated GIF
    "rotating_mip": ({"frames": ((int,), 36), "axis": ((str,), "z"), "mode": ((str,), "max"),
                      "window": ((str, list), None), "ct_window": ((str, list), None), "size": ((int,), 256),
                      "fps": ((int, float), 12)}, ("gif",)),
}
DEFAULT_FORMAT = {"volume": "nifti", "resample": "nifti", "reslice": "png", "mip": "png", "slab_mips": "png",
                  "rotating_mip": "gif"}


@dataclass
class OutputSpec:
    name: str
    kind: str
    format: str
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        # None means "the default" and TOML has no null: leave such keys out so the dict parses again
        return {"name": self.name, "kind": self.kind, "format": self.format,
                **{k: v for k, v in self.params.items() if v is not None}}


@dataclass
class Recipe:
    name: str
    outputs: list[OutputSpec]
    backend: str | None = None
    source: str = "<built-in default>"

    def to_dict(self) -> dict:
        return {"recipe": {"name": self.name, "backend": self.backend},
                "output": [o.to_dict() for o in self.outputs]}


DEFAULT_RECIPE_TOML = """
# gpukit's default recipe: what a radiologist skimming a CT series wants to see. The windows are CT presets
# (ct_window): other modalities get the file's own window, else a percentile window of the image.
[recipe]
name = "default"

[[output]]
name = "axial_mip_slab"
kind = "slab_mips"
plane = "axial"
thickness_mm = 10
step_mm = 10
ct_window = "lung"

[[output]]
name = "coronal"
kind = "reslice"
plane = "coronal"
ct_window = "soft_tissue"

[[output]]
name = "sagittal"
kind = "reslice"
plane = "sagittal"
ct_window = "bone"

[[output]]
name = "rotating_mip"
kind = "rotating_mip"
frames = 36
axis = "z"
ct_window = "bone"
size = 192

[[output]]
name = "iso1mm"
kind = "resample"
spacing_mm = 1.0
format = "nifti"
"""


def _check_window(value, where: str) -> None:
    if value is None:
        return
    if isinstance(value, list):
        if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) \
                or value[1] <= 0:
            raise RecipeError(f"{where}: window must be a preset name or [center, width] with width > 0, "
                              f"got {value!r}")
        return
    from ..presets import get_preset

    try:
        get_preset(value)
    except (KeyError, ValueError) as exc:
        raise RecipeError(f"{where}: {exc}") from None


def parse_recipe(data: dict, source: str = "<dict>") -> Recipe:
    """Validate a recipe given as a dict (as TOML loads it)."""
    if not isinstance(data, dict):
        raise RecipeError("a recipe is a table with [recipe] and [[output]] entries", source)
    unknown = set(data) - {"recipe", "output"}
    if unknown:
        raise RecipeError(f"unknown top-level key(s) {sorted(unknown)}; expected [recipe] and [[output]]", source)
    head = data.get("recipe", {})
    if not isinstance(head, dict) or set(head) - {"name", "backend"}:
        raise RecipeError(f"[recipe] takes 'name' and 'backend', got {sorted(head) if isinstance(head, dict) else head!r}",
                          source)
    backend = head.get("backend")
    if backend is not None:
        from ..backends import REGISTRY

        if backend != "auto" and backend not in REGISTRY:
            raise RecipeError(f"[recipe] backend {backend!r} is unknown; known: auto, {', '.join(REGISTRY)}", source)
    outs = data.get("output", [])
    if not isinstance(outs, list) or not outs:
        raise RecipeError("the recipe has no [[output]] entries", source)
    specs: list[OutputSpec] = []
    seen = set()
    for n, o in enumerate(outs):
        where = f"output #{n + 1}" + (f" ({o.get('name')!r})" if isinstance(o, dict) and o.get("name") else "")
        if not isinstance(o, dict):
            raise RecipeError(f"{where}: must be a table", source)
        kind = o.get("kind")
        if kind not in KINDS:
            raise RecipeError(f"{where}: kind {kind!r} is unknown; choose one of {', '.join(KINDS)}", source)
        allowed, formats = KINDS[kind]
        name = o.get("name") or f"{kind}{n + 1}"
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise RecipeError(f"{where}: name must be letters, digits, '_' or '-', got {name!r}", source)
        if name in seen:
            raise RecipeError(f"{where}: name {name!r} is used twice", source)
        seen.add(name)
        fmt = o.get("format", DEFAULT_FORMAT[kind])
        if fmt not in formats:
            raise RecipeError(f"{where}: format {fmt!r} is not available for {kind}; choose {', '.join(formats)}",
                              source)
        if fmt == "zarr":
            import importlib.util

            if importlib.util.find_spec("zarr") is None:
                raise RecipeError(f"{where}: zarr output needs the zarr package (pip install 'gpukit[zarr]')", source)
        params = {}
        for key, value in o.items():
            if key in ("kind", "name", "format"):
                continue
            if key not in allowed:
                raise RecipeError(f"{where}: unknown key {key!r} for kind {kind}; allowed: "
                                  f"{', '.join(sorted(allowed)) or 'none'}", source)
            types, _ = allowed[key]
            if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                raise RecipeError(f"{where}: {key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}",
                                  source)
            params[key] = value
        for key, (_, default) in allowed.items():
            params.setdefault(key, default)
        if "plane" in params and params["plane"] not in PLANES:
            raise RecipeError(f"{where}: plane must be one of {', '.join(PLANES)}, got {params['plane']!r}", source)
        if "mode" in params and params["mode"] not in PROJECTION_MODES:
            raise RecipeError(f"{where}: mode must be one of {', '.join(PROJECTION_MODES)}, got {params['mode']!r}",
                              source)
        if "interp" in params and params["interp"] not in ("linear", "nearest"):
            raise RecipeError(f"{where}: interp must be linear or nearest", source)
        if "axis" in params and params["axis"] not in ("x", "y", "z"):
            raise RecipeError(f"{where}: axis must be x, y or z", source)
        for key in ("spacing_mm", "thickness_mm", "step_mm", "frames", "size", "fps"):
            if key in params and params[key] <= 0:
                raise RecipeError(f"{where}: {key} must be > 0, got {params[key]!r}", source)
        _check_window(params.get("window"), f"{where}")
        _check_window(params.get("ct_window"), f"{where}")
        specs.append(OutputSpec(name, kind, fmt, params))
    return Recipe(str(head.get("name", os.path.basename(source))), specs, backend, source)


def load_recipe(path: "str | os.PathLike | None" = None) -> Recipe:
    """Read and validate a TOML recipe; ``None`` gives the built-in default recipe."""
    if path is None:
        return parse_recipe(tomllib.loads(DEFAULT_RECIPE_TOML), "<built-in default>")
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise RecipeError("recipe file not found", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"not valid TOML: {exc}", path) from None
    return parse_recipe(data, path)
