"""assay: turn raw text into LLM pretraining data and measure what it is worth."""

from importlib import metadata

from assay.pipeline import Pipeline, run_recipe
from assay.recipe import Recipe, RecipeError, load_recipe, parse_recipe

try:
    __version__ = metadata.version("assay")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "unknown"

__all__ = ["Pipeline", "Recipe", "RecipeError", "load_recipe", "parse_recipe", "run_recipe"]
