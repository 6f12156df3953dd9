"""Batch processing of many series on Dask: recipes, atomic outputs, a resumable manifest."""

from .manifest import Manifest, OutputWriteError
from .recipe import DEFAULT_RECIPE_TOML, Recipe, RecipeError, load_recipe, parse_recipe
from .runner import BatchResult, process_series, run_batch

__all__ = ["Manifest", "OutputWriteError", "Recipe", "RecipeError", "load_recipe", "parse_recipe",
           "DEFAULT_RECIPE_TOML",
           "BatchResult", "process_series", "run_batch"]
