"""assay: turn raw text into LLM pretraining data and measure what it is worth."""

from assay.pipeline import Pipeline, run_recipe
from assay.recipe import Recipe, RecipeError, load_recipe, parse_recipe
from assay.versions import assay_version

__version__ = assay_version()

__all__ = ["Pipeline", "Recipe", "RecipeError", "load_recipe", "parse_recipe", "run_recipe"]
