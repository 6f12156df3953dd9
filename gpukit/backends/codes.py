"""The codes every backend shares: projection modes, interpolations, VOI LUT functions, tolerances, capabilities.

One module, imported by the numpy reference, the Numba kernels (CPU and
CUDA), the CUDA C++ wrapper and the ops layer; the ``#define`` lines of each
``kernels/*.cu`` module are generated from it (:func:`cuda_defines`), so a
code exists in exactly one place. Adding a projection mode means adding it
to :data:`MODES` here and giving it a combine rule in
:mod:`gpukit.backends._sampler_math` (Numba, CPU and CUDA) and in
``kernels/gpukit_common.cuh`` (CUDA C++).
"""

from __future__ import annotations

#: combination modes along the output's ``s`` axis, and their integer codes in every compiled kernel
MODES: dict[str, int] = {"none": 0, "max": 1, "min": 2, "mean": 3}
#: the modes that combine (projections); ``"none"`` keeps every sample (resample, reslice)
PROJECTION_MODES: tuple[str, ...] = tuple(m for m in MODES if m != "none")
#: interpolations, and the value of the kernels' ``linear`` flag
INTERPS: dict[str, int] = {"linear": 1, "nearest": 0}

#: sampler precisions: "exact" is the float64 arithmetic of the numpy reference, bit for bit where the backend can;
#: "fast" lets a backend with the ``FAST_PRECISION`` capability compute coordinates, weights and sums in float32
#: (or fixed point) within the error bound its sampler states (a backend without it runs "exact")
PRECISIONS: tuple[str, ...] = ("exact", "fast")

#: VOI LUT function codes (DICOM PS3.3 C.11.2.1.2), as passed to every backend's kernels
LINEAR = 0
LINEAR_EXACT = 1
SIGMOID = 2
FUNCTION_CODES: dict[str, int] = {"LINEAR": LINEAR, "LINEAR_EXACT": LINEAR_EXACT, "SIGMOID": SIGMOID}

#: tolerance (in voxels) of the sampler's inside test, the same in every backend
EPS = 1e-6

# -- capabilities: what a backend can do beyond the contract's required operations (data, never hasattr) --------
#: ``to_bricks`` / ``sample_grid_bricked``: a 4x4x4-bricked copy of the volume for fast reslicing
BRICKED_LAYOUT = "bricked_layout"
#: ``brick_extrema`` and ``sample_grid(..., bricks=)``: max/min projections skip bricks that cannot change the result
BRICK_SKIPPING = "brick_skipping"
#: ``sample_grid(..., window=)`` writes the windowed uint8 image in the sampling pass
FUSED_WINDOW = "fused_window"
#: the backend's kernels may run from several threads at once
CONCURRENT_CALLS = "concurrent_calls"
#: ``sample_grid(..., precision="fast")`` / ``sample_grid_bricked(..., precision="fast")``: a float32 sampler
FAST_PRECISION = "fast_precision"
#: ``project_slices``: max/min/mean projections in slice order (shear-warp, :mod:`gpukit.backends._slices`)
SLICE_ORDER = "slice_order"
CAPABILITIES: tuple[str, ...] = (BRICKED_LAYOUT, BRICK_SKIPPING, FUSED_WINDOW, CONCURRENT_CALLS, FAST_PRECISION,
                                 SLICE_ORDER)
#: projection orders of ``project``: "ray" (march each output ray, the reference) or "slice" (shear-warp)
ORDERS: tuple[str, ...] = ("ray", "slice")


def cuda_defines() -> list[tuple[str, str]]:
    """The ``#define`` pairs every CUDA C++ module is built with (mode and VOI function codes)."""
    pairs = [("GK_LINEAR", LINEAR), ("GK_LINEAR_EXACT", LINEAR_EXACT), ("GK_SIGMOID", SIGMOID)]
    pairs += [(f"GK_MODE_{m.upper()}", code) for m, code in MODES.items()]
    return [(k, str(v)) for k, v in pairs]


__all__ = ["MODES", "PROJECTION_MODES", "INTERPS", "PRECISIONS", "FAST_PRECISION", "SLICE_ORDER", "ORDERS", "LINEAR", "LINEAR_EXACT", "SIGMOID", "FUNCTION_CODES", "EPS",
           "BRICKED_LAYOUT", "BRICK_SKIPPING", "FUSED_WINDOW", "CONCURRENT_CALLS", "CAPABILITIES", "cuda_defines"]
