"""Named CT window presets (Hounsfield units): ``get_preset("lung") -> (center, width)``.

Source: Radiopaedia, "Windowing (CT)", https://radiopaedia.org/articles/windowing-ct
(the "common window settings" list; values as W:width L:level). Where the
article gives a range, the value picked and the range are both noted:

=================  =======  =======  =========================================
name               center   width    Radiopaedia
=================  =======  =======  =========================================
brain              40       80       brain W:80 L:40
subdural           75       215      subdural W:130-300 L:50-100 (midpoints)
stroke             40       40       stroke W:40 L:40 (or W:8 L:32, below)
stroke_narrow      32       8        stroke W:8 L:32
temporal_bones     600      2800     temporal bones W:2800 L:600
soft_tissue        50       400      soft tissues W:350-400 L:20-60 (L:50, as
                                     the mediastinum's)
lung               -600     1500     lungs W:1500 L:-600
mediastinum        50       350      mediastinum W:350 L:50
bone               400      1800     bone W:1800 L:400
liver              30       150      liver W:150 L:30
=================  =======  =======  =========================================

Names are matched case-insensitively, with spaces and hyphens read as
underscores ("Soft tissue", "soft-tissue"); a few aliases are accepted
(:data:`ALIASES`).
"""

from __future__ import annotations

from .errors import ParameterTypeError, UnknownPresetError  # noqa: F401  (defined with every gpukit error)


#: name -> (center, width) in HU; see the module docstring for the source of each value.
PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "stroke_narrow": (32.0, 8.0),
    "temporal_bones": (600.0, 2800.0),
    "soft_tissue": (50.0, 400.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "liver": (30.0, 150.0),
}

#: other spellings -> preset name
ALIASES: dict[str, str] = {
    "lungs": "lung",
    "soft_tissues": "soft_tissue",
    "softtissue": "soft_tissue",
    "soft": "soft_tissue",
    "mediastinal": "mediastinum",
    "bones": "bone",
    "temporal_bone": "temporal_bones",
    "head": "brain",
}


def _key(name: str) -> str:
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


def preset_names() -> list[str]:
    """The preset names (aliases not included)."""
    return list(PRESETS)


def get_preset(name: str) -> tuple[float, float]:
    """``(center, width)`` in HU of the preset ``name``.

    Raises
    ------
    UnknownPresetError
        (a ``ValueError``) for a name that is neither a preset nor an alias; the
        message lists the known names.

    Examples
    --------
    >>> get_preset("lung")
    (-600.0, 1500.0)
    >>> get_preset("Soft tissue")
    (50.0, 400.0)
    """
    if not isinstance(name, str):
        raise ParameterTypeError(f"a window preset is named by a string, got {type(name).__name__}")
    key = _key(name)
    key = ALIASES.get(key, key)
    if key not in PRESETS:
        raise UnknownPresetError(f"unknown window preset {name!r}; known presets: {', '.join(PRESETS)} "
                                 f"(aliases: {', '.join(ALIASES)})")
    return PRESETS[key]


__all__ = ["PRESETS", "ALIASES", "UnknownPresetError", "get_preset", "preset_names"]
