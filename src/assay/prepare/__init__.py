"""From curated documents to training shards: tokenizers, mixtures with token budgets and
repetition limits, concat-and-chunk and Dataset Decomposition packing (``assay prepare``)."""

from assay.prepare.mixture import BudgetError, effective_data
from assay.prepare.recipe import PrepareRecipe, load_prepare_recipe, parse_prepare_recipe
from assay.prepare.run import PrepareResult, prepare
from assay.prepare.sources import PrepareError
from assay.prepare.tokenizer import Encoder, TokenizerError, load_encoder, train_encoder

__all__ = [
    "BudgetError",
    "Encoder",
    "PrepareError",
    "PrepareRecipe",
    "PrepareResult",
    "TokenizerError",
    "effective_data",
    "load_encoder",
    "load_prepare_recipe",
    "parse_prepare_recipe",
    "prepare",
    "train_encoder",
]
