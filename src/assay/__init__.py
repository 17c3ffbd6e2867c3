"""assay: turn raw text into LLM pretraining data and measure what it is worth."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assay.pipeline import Pipeline, run_recipe
    from assay.recipe import Recipe, RecipeError, load_recipe, parse_recipe

__all__ = ["Pipeline", "Recipe", "RecipeError", "load_recipe", "parse_recipe", "run_recipe"]

# Imported on first use, so that a worker process, which imports one step module and the
# engine's worker, does not load the driver and the recipe parser too.
_WHERE = {"Pipeline": "assay.pipeline", "run_recipe": "assay.pipeline", "Recipe": "assay.recipe",
          "RecipeError": "assay.recipe", "load_recipe": "assay.recipe", "parse_recipe": "assay.recipe"}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from assay.versions import assay_version

        return assay_version()
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'assay' has no attribute {name!r}")
