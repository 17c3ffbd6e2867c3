"""The prepare recipe: tokenizer, mixture (sources, budgets, phases) and packing.

Validated like the curation recipe (:mod:`assay.recipe`): YAML data only, every problem
reported as ``FILE:LINE: message`` before any work starts.

    name: sample-mix
    output: out/sample-shards
    seed: 0
    tokenizer: {train: {vocab_size: 8192}}      # or {path: tokenizer.json}
    mixture:
      total_tokens: 2_000_000
      sources:
        docs:  {path: out/dedup, select: [debian-installation-guide], weight: 0.6}
        udhr:  {path: out/dedup, select: ["udhr2 (nltk_data)"], weight: 0.4, max_epochs: 8}
      phases:
        - {name: main, fraction: 0.85}
        - {name: anneal, fraction: 0.15, weights: {udhr: 1.0}}
    packing: {method: both, context: 2048}
    heldout: {fraction: 0.01}                   # or heldout: 0.01
    batch_mb: 16                                # text held at a time (and batch_rows: 65536)

``input: out/dedup`` instead of ``mixture`` tokenizes every document of that output once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assay.prepare.layout import HELDOUT
from assay.prepare.mixture import DEFAULT_MAX_EPOCHS
from assay.prepare.tokenizer import DEFAULT_EOS, MAX_VOCAB, Engine
from assay.specfile import RecipeError, line_of, load_yaml, located_error
from assay.steps.base import Seed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainSpec(_Strict):
    """Train a byte-level BPE on the mixture's sources."""

    vocab_size: int = Field(ge=258, le=MAX_VOCAB, description="ids in all: 256 bytes, EOS and the merges")
    max_mb: float = Field(256.0, gt=0, description="train on a seeded sample of at most this much text")
    min_frequency: int = Field(2, ge=1, description="a pair must occur this often to be merged")


class TokenizerSpec(_Strict):
    """A local tokenizer.json (``path``) or one trained here (``train``)."""

    path: str | None = None
    train: TrainSpec | None = None
    eos: str = Field(DEFAULT_EOS, description="the end-of-document token, appended to every document")
    engine: Engine = Field("auto", description="auto: tiktoken's engine when its ids are identical")

    @model_validator(mode="after")
    def _one_of(self) -> TokenizerSpec:
        if (self.path is None) == (self.train is None):
            raise ValueError("give exactly one of tokenizer.path and tokenizer.train")
        return self


class SourceSpec(_Strict):
    """One source of the mixture: documents of a curated output, and its share."""

    path: str = Field(description="a curated output folder (its data/ is read) or data files")
    select: list[str] | None = Field(None, description="keep documents whose `source` is one of these")
    weight: float | None = Field(None, ge=0, description="share of what fixed budgets leave of the total")
    tokens: int | None = Field(None, ge=0, description="fixed tokens over the whole run")
    epochs: float | None = Field(None, gt=0, description="fixed number of passes over the source")
    max_epochs: float | None = Field(None, gt=0, description="cap on passes (default: the mixture's)")

    @model_validator(mode="after")
    def _one_share(self) -> SourceSpec:
        if sum(x is not None for x in (self.weight, self.tokens, self.epochs)) > 1:
            raise ValueError("give at most one of weight, tokens and epochs")
        return self


class PhaseSpec(_Strict):
    """A stretch of training with its fraction of the tokens and, optionally, its own weights."""

    name: str
    fraction: float = Field(gt=0, le=1)
    weights: dict[str, float] | None = None


class MixtureSpec(_Strict):
    total_tokens: int | None = Field(None, gt=0, description="tokens over the whole run")
    max_epochs: float = Field(DEFAULT_MAX_EPOCHS, gt=0, description="default cap on passes over a source")
    tolerance: float = Field(0.002, gt=0, lt=0.1, description="allowed miss per source and phase, relative")
    sources: dict[str, SourceSpec]
    phases: list[PhaseSpec] = Field(default_factory=lambda: [PhaseSpec(name="main", fraction=1.0)])


class PackingSpec(_Strict):
    """How documents become training sequences."""

    method: Literal["concat", "decompose", "both"] = "concat"
    context: int = Field(2048, ge=1, description="context length of concat-and-chunk windows")
    min_log2: int = Field(8, ge=0, le=30, description="smallest Dataset Decomposition bucket, 2^min tokens")
    max_log2: int = Field(13, ge=0, le=30, description="largest Dataset Decomposition bucket, 2^max tokens")
    shard_tokens: int = Field(1 << 30, ge=1, description="tokens per concat .bin file at most")

    @model_validator(mode="after")
    def _buckets(self) -> PackingSpec:
        if self.min_log2 > self.max_log2:
            raise ValueError("min_log2 must not exceed max_log2")
        return self


class HeldoutSpec(_Strict):
    """Documents reserved for evaluation: a seeded share of each source's documents, taken out
    before the tokenizer sample and the mixture, so no phase ever trains on them."""

    fraction: float = Field(0.0, ge=0, lt=0.5, description="share of each source's documents held out")
    max_documents: int | None = Field(None, ge=1, description="at most this many per source")


class PrepareRecipe(_Strict):
    """A validated prepare recipe."""

    name: str
    output: str
    seed: Seed = Field(0, description="seeds the tokenizer sample, the draws and the shuffles")
    tokenizer: TokenizerSpec
    input: str | list[str] | None = Field(None, description="shorthand: every document of these once")
    mixture: MixtureSpec | None = None
    packing: PackingSpec = Field(default_factory=PackingSpec)
    skip_empty: bool = Field(False, description="skip empty documents instead of refusing them")
    heldout: HeldoutSpec = Field(default_factory=HeldoutSpec, description="the held-out split")
    batch_rows: int = Field(65_536, ge=1, description="documents read and tokenized at a time, at most")
    batch_mb: float = Field(16.0, gt=0, description="MB of text read and tokenized at a time, about")
    source: str = Field("<python>", exclude=True, description="the recipe file, for messages")

    @field_validator("heldout", mode="before")
    @classmethod
    def _fraction_shorthand(cls, value: Any) -> Any:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return {"fraction": value} if number else value

    @model_validator(mode="after")
    def _input_or_mixture(self) -> PrepareRecipe:
        if (self.input is None) == (self.mixture is None):
            raise ValueError("give exactly one of input and mixture")
        return self

    def resolved_mixture(self) -> MixtureSpec:
        """The mixture, with ``input`` written as sources taken once each."""
        if self.mixture is not None:
            return self.mixture
        paths = [self.input] if isinstance(self.input, str) else list(self.input or [])
        sources: dict[str, SourceSpec] = {}
        for path in paths:
            name = Path(path.rstrip("/")).name or path
            while name in sources:
                name += "_"
            sources[name] = SourceSpec(path=path, epochs=1.0)
        return MixtureSpec(sources=sources)


def load_prepare_recipe(path: str | Path) -> PrepareRecipe:
    """Read and validate a prepare recipe; :class:`RecipeError` with file and line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(source, None, f"cannot read recipe: {exc.strerror}") from None
    return parse_prepare_recipe(text, source=source)


def parse_prepare_recipe(text: str, *, source: str = "<string>") -> PrepareRecipe:
    """Validate prepare-recipe YAML ``text``."""
    data, lines = load_yaml(text, source)
    if not isinstance(data, dict):
        raise RecipeError(source, 1, "a prepare recipe is a mapping with keys name, output, tokenizer, "
                                     "and input or mixture")
    try:
        recipe = PrepareRecipe.model_validate(data)
    except ValidationError as exc:
        raise _located_error(exc, source, lines) from None
    recipe.source = source
    mixture = recipe.resolved_mixture()
    for i, phase in enumerate(mixture.phases):
        for name in phase.weights or {}:
            if name not in mixture.sources:
                raise RecipeError(source, line_of(lines, ("mixture", "phases", i, "weights", name)),
                                  f"phase {phase.name!r} weights unknown source {name!r}; sources: "
                                  f"{', '.join(mixture.sources)}")
        if phase.name == HELDOUT and recipe.heldout.fraction > 0:
            raise RecipeError(source, line_of(lines, ("mixture", "phases", i, "name")),
                              f"phase name {HELDOUT!r} is the held-out split's; rename the phase")
    return recipe


def _located_error(exc: ValidationError, source: str, lines: dict[Any, int]) -> RecipeError:
    """The most telling error, located (a validator's message as it is, without pydantic's
    "Value error, " prefix)."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    if err["type"] == "value_error":
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "recipe"
        message = err["msg"].removeprefix("Value error, ")
        return RecipeError(source, line_of(lines, loc), f"{field}: {message}")
    return located_error(exc, source, lines, (), PrepareRecipe)
