"""Perplexity under a reference n-gram language model, and CCNet's quality buckets.

CCNet (Wenzek et al. 2020, "CCNet: Extracting High Quality Monolingual Datasets from Web
Crawl Data") scores every document with a 5-gram KenLM model trained on Wikipedia in the
document's language and splits each language into head, middle and tail at the 30th and
60th percentiles of those perplexities. "Perplexed by Quality" (Ankner et al. 2024) and
harmful-content filters use the inverse: a model trained on unwanted text gives *low*
perplexity to documents like it.

The model here is an interpolated Kneser-Ney n-gram model (Kneser & Ney 1995; Chen &
Goodman 1999, one discount per order, ``D = n1 / (n1 + 2 n2)``) over the lower-cased
WordPunct tokens of :mod:`assay.text.wordpunct`, each line a sentence with ``<s>``
padding and ``</s>``. Lower orders use continuation counts (how many distinct words
precede an n-gram), except n-grams that start at ``<s>``, which keep raw counts (as KenLM
does); the unigram distribution is interpolated with a uniform one over the vocabulary
plus an unknown word, so every token has a finite probability. N-grams are kept as 64-bit
hashes in sorted arrays: no vocabulary file, vectorised lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from assay.steps.base import (
    DocumentStep,
    StepKind,
    StepOutput,
    StepParams,
    Threshold,
    register,
    set_thresholds,
    threshold_rules,
)
from assay.steps.select.model_files import check_model, load_model, save_model
from assay.text.wordpunct import chain, token_hashes

KIND = "ngram_lm"
BOS = np.uint64(0x5F3759DF5F3759DF)  # reserved hashes for <s> and </s>
EOS = np.uint64(0x2545F4914F6CDD1D)
BUCKETS = ("head", "middle", "tail")

# CCNet's per-language perplexity cutoffs (30th, 60th percentile) for its head/middle/tail
# buckets: rows 30 and 60 of cc_net's ``cutoff.csv`` (facebookresearch/cc_net, data/),
# as shipped in the shared reference data (``data/reference/ccnet_cutoff.csv``). They hold
# for CCNet's own models (5-gram KenLM on SentencePiece, trained on Wikipedia).
CCNET_CUTOFFS: dict[str, tuple[float, float]] = {
    "de": (370, 590), "it": (220, 360), "fr": (180, 330), "nl": (430, 650), "pl": (160, 260),
    "pt": (170, 270), "es": (180, 290), "no": (430, 680), "da": (380, 600), "id": (600, 970),
    "lt": (190, 270), "fi": (1110, 1500), "en": (340, 520), "hu": (80, 140), "ro": (180, 270),
    "ko": (920, 2130), "ar": (490, 790), "bn": (190, 300), "fa": (370, 700), "ru": (210, 310),
    "uk": (140, 220), "ml": (2430, 3220), "my": (2530, 3040), "lv": (1130, 1480), "is": (850, 1190),
    "ca": (210, 330), "ne": (860, 1130), "et": (1270, 1620), "hy": (750, 1080), "ja": (1110, 1450),
    "hr": (720, 910), "hi": (480, 790), "az": (600, 950), "el": (450, 670), "cs": (820, 1140),
    "bg": (450, 680), "he": (1280, 1710), "zh": (1460, 1950), "ka": (910, 1310), "km": (1040, 2180),
    "gu": (1110, 1570), "mk": (530, 740), "kn": (2210, 2800), "mr": (1380, 1870), "af": (540, 770),
    "mn": (680, 1010), "kk": (610, 930), "be": (670, 910),
}


# ------------------------------------------------------------------------ n-gram events


@dataclass(frozen=True)
class Events:
    """Every predicted token of a batch: for each order k (index k-1), the hash of the
    k-gram ending at it and of its (k-1)-token context, and whether the k-gram starts at
    ``<s>``; plus the text each token belongs to."""

    grams: list[np.ndarray]
    contexts: list[np.ndarray]
    starts_at_bos: list[np.ndarray]
    owner: np.ndarray


def events(texts: Sequence[str], order: int) -> Events:
    """The n-gram events of ``texts``: each non-empty line is a sentence, padded with
    ``order - 1`` ``<s>`` and ended by ``</s>``."""
    lines, line_owner = [], []
    for i, text in enumerate(texts):
        for line in text.split("\n"):
            if line.strip():
                lines.append(line)
                line_owner.append(i)
    tokens, counts = token_hashes(lines)
    lengths = counts + order  # order-1 <s>, the tokens, </s>
    line_start = np.cumsum(lengths) - lengths
    seq = np.full(int(lengths.sum()), BOS, dtype=np.uint64)
    first_token = np.cumsum(counts) - counts
    token_pos = np.repeat(line_start + order - 1 - first_token, counts) + np.arange(len(tokens))
    seq[token_pos] = tokens
    seq[line_start + order - 1 + counts] = EOS
    position = np.arange(len(seq)) - np.repeat(line_start, lengths)
    predicted = np.flatnonzero(position >= order - 1)
    grams, contexts, at_bos = [], [], []
    current = seq  # current[j]: hash of the k-gram ending at j
    previous = np.zeros(len(seq), dtype=np.uint64)  # the (k-1)-gram ending at j (0 for k = 1)
    for k in range(1, order + 1):
        if k > 1:
            extended = np.zeros(len(seq), dtype=np.uint64)
            extended[1:] = chain(current[:-1], seq[1:])
            previous, current = current, extended
        grams.append(current[predicted])
        contexts.append(previous[predicted - 1] if k > 1 else np.zeros(len(predicted), np.uint64))
        at_bos.append(seq[predicted - k + 1] == BOS)
    owner = np.repeat(np.asarray(line_owner, dtype=np.int64), counts + 1)
    return Events(grams, contexts, at_bos, owner)


# ------------------------------------------------------------------------ the model


def _positions(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(at, found)``: where each of ``query`` is in the sorted ``keys``, and whether it is
    there at all (``at`` is a valid index only where found)."""
    if not len(keys):
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return at, keys[at] == query


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``values`` of ``query`` in the sorted ``keys`` (0 where absent)."""
    at, found = _positions(keys, query)
    out = np.zeros(len(query))
    out[found] = values[at[found]]
    return out


def _discount(counts: np.ndarray) -> float:
    """Ney's estimate ``n1 / (n1 + 2 n2)``, kept in [0.1, 0.9] for tiny corpora."""
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    return float(np.clip(n1 / (n1 + 2 * n2), 0.1, 0.9)) if n1 + n2 else 0.5


@dataclass
class NgramLM:
    """An interpolated Kneser-Ney n-gram model (see the module docstring).

    Per order k (index k-1): ``gram_keys``/``gram_counts`` (sorted hashes; raw counts at
    the top order, continuation counts below), ``context_keys``/``context_totals``/
    ``context_types`` (the sum of those counts and the number of distinct continuations
    per context), and a discount.
    """

    order: int
    gram_keys: list[np.ndarray]
    gram_counts: list[np.ndarray]
    context_keys: list[np.ndarray]
    context_totals: list[np.ndarray]
    context_types: list[np.ndarray]
    discounts: np.ndarray
    vocabulary: int
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def train(cls, texts: Sequence[str], order: int = 3) -> NgramLM:
        ev = events(texts, order)
        gram_keys, gram_counts, context_keys, totals, types = [], [], [], [], []
        discounts = np.zeros(order)
        for k in range(1, order + 1):
            grams, contexts = ev.grams[k - 1], ev.contexts[k - 1]
            if k == order:
                keys, first, counts = np.unique(grams, return_index=True, return_counts=True)
                counts = counts.astype(np.float64)
            else:
                # Continuation count: distinct words before the k-gram (distinct (k+1)-grams
                # that end with it); k-grams that start at <s> keep their raw counts.
                _, first_long = np.unique(ev.grams[k], return_index=True)
                suffix = grams[first_long]
                continued = ~ev.starts_at_bos[k - 1][first_long]
                raw = ev.starts_at_bos[k - 1]
                pooled = np.concatenate([suffix[continued], grams[raw]])
                keys, where, counts = np.unique(pooled, return_index=True, return_counts=True)
                counts = counts.astype(np.float64)
                source = np.concatenate([first_long[continued], np.flatnonzero(raw)])
                first = source[where]
            gram_keys.append(keys)
            gram_counts.append(counts)
            discounts[k - 1] = _discount(counts)
            ctx = contexts[first]
            ctx_keys, inverse = np.unique(ctx, return_inverse=True)
            context_keys.append(ctx_keys)
            totals.append(np.bincount(inverse, weights=counts, minlength=len(ctx_keys)))
            types.append(np.bincount(inverse, minlength=len(ctx_keys)).astype(np.float64))
        vocabulary = len(gram_keys[0]) + 1  # the seen words and </s>, plus one unknown word
        return cls(order, gram_keys, gram_counts, context_keys, totals, types, discounts, vocabulary,
                   {"training": {"texts": len(texts), "tokens": len(ev.owner)}})

    def token_log_probs(self, ev: Events) -> np.ndarray:
        """Natural-log probability of every predicted token of ``ev``."""
        # Order 1: one context (the empty one), interpolated with the uniform distribution.
        d = self.discounts[0]
        total = float(self.context_totals[0][0]) if len(self.context_totals[0]) else 0.0
        if total > 0:
            counts = _lookup(self.gram_keys[0], self.gram_counts[0], ev.grams[0])
            prob = (np.maximum(counts - d, 0) + d * self.context_types[0][0] / self.vocabulary) / total
        else:
            prob = np.full(len(ev.grams[0]), 1 / self.vocabulary)
        for k in range(2, self.order + 1):
            i = k - 1
            # One search of the contexts serves both their totals and their type counts.
            at, found = _positions(self.context_keys[i], ev.contexts[i])
            totals = np.zeros(len(found))
            totals[found] = self.context_totals[i][at[found]]
            known = totals > 0
            if not known.any():
                continue
            types = self.context_types[i][at[known]]
            counts = _lookup(self.gram_keys[i], self.gram_counts[i], ev.grams[i][known])
            d = self.discounts[i]
            t = totals[known]
            prob[known] = (np.maximum(counts - d, 0) + d * types * prob[known]) / t
        return np.log(prob)

    def perplexity(self, texts: Sequence[str]) -> np.ndarray:
        """Per-text perplexity, ``exp(-mean token log-probability)`` over its tokens and
        ``</s>`` marks (NaN for a text with no tokens)."""
        ev = events(texts, self.order)
        log_probs = self.token_log_probs(ev)
        sums = np.bincount(ev.owner, weights=log_probs, minlength=len(texts))
        counts = np.bincount(ev.owner, minlength=len(texts))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, np.exp(-sums / np.maximum(counts, 1)), np.nan)

    # -- files ------------------------------------------------------------------------
    def save(self, folder: str) -> str:
        arrays: dict[str, np.ndarray] = {"discounts": self.discounts}
        for i in range(self.order):
            arrays[f"gram_keys_{i}"] = self.gram_keys[i]
            arrays[f"gram_counts_{i}"] = self.gram_counts[i]
            arrays[f"context_keys_{i}"] = self.context_keys[i]
            arrays[f"context_totals_{i}"] = self.context_totals[i]
            arrays[f"context_types_{i}"] = self.context_types[i]
        return save_model(folder, KIND, arrays,
                          {"params": {"order": self.order, "vocabulary": self.vocabulary}, **self.info})

    @classmethod
    def load(cls, folder: str) -> NgramLM:
        arrays, manifest = load_model(folder, KIND)
        order = manifest["params"]["order"]

        def per_order(name: str) -> list[np.ndarray]:
            return [arrays[f"{name}_{i}"] for i in range(order)]

        return cls(order, per_order("gram_keys"), per_order("gram_counts"), per_order("context_keys"),
                   per_order("context_totals"), per_order("context_types"), arrays["discounts"],
                   manifest["params"]["vocabulary"],
                   {k: v for k, v in manifest.items() if k not in ("params", "arrays")})


def train_lm(texts: Sequence[str], order: int = 3, validation: float = 0.1, seed: int = 0) -> NgramLM:
    """Train on a seeded ``1 - validation`` of the texts; the held-out texts' perplexity
    percentiles (30th and 60th, CCNet's bucket edges) go into the model's ``info``."""
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(texts), dtype=bool)
    held_out[rng.permutation(len(texts))[: round(validation * len(texts))]] = True
    model = NgramLM.train([t for t, h in zip(texts, held_out, strict=True) if not h], order)
    if held_out.any():
        ppl = model.perplexity([t for t, h in zip(texts, held_out, strict=True) if h])
        ppl = ppl[~np.isnan(ppl)]
        if len(ppl):
            p30, p60 = np.percentile(ppl, [30, 60])
            model.info["held_out"] = {"texts": int(held_out.sum()), "p30": round(float(p30), 3),
                                      "p60": round(float(p60), 3),
                                      "median": round(float(np.median(ppl)), 3)}
    return model


def buckets(perplexity: np.ndarray, head_max: float, middle_max: float) -> np.ndarray:
    """CCNet's bucket of each perplexity: head below the 30th-percentile cutoff, middle
    below the 60th, tail otherwise (and for NaN: a document with no tokens)."""
    with np.errstate(invalid="ignore"):
        return np.where(perplexity < head_max, "head", np.where(perplexity < middle_max, "middle", "tail"))


def bucket_edges(params: PerplexityParams, model_info: Mapping[str, Any]) -> tuple[float, float]:
    """The (head, middle) upper edges a step with ``params`` uses, given its model's info."""
    if params.head_max is not None and params.middle_max is not None:
        return params.head_max, params.middle_max
    if params.cutoffs == "ccnet":
        return CCNET_CUTOFFS[params.language]
    return model_info["held_out"]["p30"], model_info["held_out"]["p60"]


# ------------------------------------------------------------------------ the step


class PerplexityParams(StepParams):
    model: str = Field(description="model folder written by `assay select train-lm`")
    cutoffs: Literal["model", "ccnet"] = Field(
        "model", description="bucket edges: the model's held-out p30/p60, or CCNet's table for language"
    )
    language: str = Field("en", description="language of the CCNet cutoffs")
    head_max: float | None = Field(None, gt=0, description="explicit head edge (p30), overrides cutoffs")
    middle_max: float | None = Field(None, gt=0, description="explicit middle edge (p60), overrides cutoffs")
    keep: list[Literal["head", "middle", "tail"]] = Field(
        default_factory=lambda: ["head", "middle"],
        description="buckets to keep (RedPajama-v1 kept CCNet's head and middle)",
    )
    min_perplexity: float | None = Field(
        None, gt=0, description="reject documents below this (a model of unwanted text: low = like it)"
    )
    max_perplexity: float | None = Field(None, gt=0, description="reject documents above this")

    @field_validator("model")
    @classmethod
    def _is_a_model(cls, path: str) -> str:
        check_model(path, KIND)
        return path

    @model_validator(mode="after")
    def _edges(self) -> PerplexityParams:
        if (self.head_max is None) != (self.middle_max is None):
            raise ValueError("give both head_max and middle_max, or neither")
        if self.head_max is not None and self.middle_max is not None and self.head_max > self.middle_max:
            raise ValueError("head_max must not exceed middle_max")
        if self.head_max is None and self.cutoffs == "ccnet" and self.language not in CCNET_CUTOFFS:
            raise ValueError(f"CCNet has no cutoffs for {self.language!r}; it has {', '.join(CCNET_CUTOFFS)}")
        needs_percentiles = self.head_max is None and self.cutoffs == "model"
        if needs_percentiles and "held_out" not in check_model(self.model, KIND):
            raise ValueError(f"{self.model} has no held-out percentiles; give head_max and middle_max")
        return self


@register
class Perplexity(DocumentStep):
    """Perplexity under a reference n-gram model, with CCNet's head/middle/tail buckets.

    Wenzek et al. 2020 (CCNet): a language model trained on a clean reference corpus
    (Wikipedia) scores each document; the 30th and 60th percentiles of the scores split
    the corpus into head, middle and tail. RedPajama-v1 (Together 2023) kept head and
    middle (the default ``keep``). ``cutoffs: ccnet`` takes CCNet's published per-language
    edges (English 340 and 520), which are calibrated to CCNet's own SentencePiece KenLM
    models; with a model trained here, ``cutoffs: model`` (the default) uses the 30th and
    60th percentiles of its perplexity on held-out reference text, CCNet's percentiles
    applied to the reference set. ``head_max``/``middle_max`` set them by hand.

    For a model trained on unwanted text (the inverse use, as in "Perplexed by Quality",
    Ankner et al. 2024, and toxicity filters), ``min_perplexity`` rejects documents the
    model finds too familiar. The model is an interpolated Kneser-Ney n-gram model
    trained by ``assay select train-lm`` (:mod:`assay.steps.select.perplexity`).

    Signals: ``perplexity.perplexity`` (NaN for a document without tokens: tail) and
    ``perplexity.bucket``. Reasons: ``perplexity_too_low``, ``perplexity_too_high``,
    ``perplexity_head``/``perplexity_middle``/``perplexity_tail`` (a bucket not kept).
    """

    name: ClassVar[str] = "perplexity"
    kind: ClassVar[StepKind] = "filter"
    Params: ClassVar[type[StepParams]] = PerplexityParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {"perplexity": pa.float64(), "bucket": pa.string()}

    params: PerplexityParams

    def setup(self) -> None:
        self._model = NgramLM.load(self.params.model)
        self._edges = bucket_edges(self.params, self._model.info)

    def compute(self, texts: list[str]) -> StepOutput:
        ppl = self._model.perplexity(texts) if texts else np.zeros(0)
        return StepOutput({"perplexity": ppl, "bucket": buckets(ppl, *self._edges).tolist()})

    def thresholds(self) -> list[Threshold]:
        p = self.params
        return set_thresholds(("perplexity_too_high", "perplexity", ">", p.max_perplexity),
                              ("perplexity_too_low", "perplexity", "<", p.min_perplexity))

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        p = self.params
        ppl = signals["perplexity"].astype(np.float64)
        bucket = signals["bucket"]
        reasons = np.array([None if b in p.keep else f"perplexity_{b}" for b in bucket], dtype=object)
        with np.errstate(invalid="ignore"):
            for reason, mask in threshold_rules(self.thresholds(), {"perplexity": ppl}):
                reasons[mask] = reason  # the bounds take precedence over the buckets
        return reasons
