"""``entigraph``: EntiGraph's synthetic documents about the relations of a document's entities."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import xxhash
from pydantic import Field

from assay.documents import URL
from assay.steps.base import Seed, StepOutput, StepParams, register
from assay.steps.llm.base import (
    LLM_UNPARSEABLE,
    LLMParams,
    LLMStep,
    describe_failure,
    failure_reasons,
    fill,
    first_failure,
    ids_and_sources,
    load_prompts,
    user,
)

MAX_ENTITY_CHARS = 200
MAX_LISTED = 100_000  # combinations listed whole to sample from; beyond, drawn one by one
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)


class EntiGraphParams(LLMParams):
    pairs_per_doc: int = Field(10, ge=0, le=10_000, description="entity pairs sampled per document")
    triples_per_doc: int = Field(0, ge=0, le=10_000, description="entity triples sampled per document")
    max_entities: int = Field(50, ge=2, le=1000, description="entities kept per document")
    max_doc_chars: int = Field(12_000, ge=100, description="the document as the model sees it")
    seed: Seed = Field(0, description="seed of the pair and triple sampler")


@register
class EntiGraph(LLMStep):
    """Grow a small corpus into a large synthetic one by describing its entities' relations.

    Yang et al. 2024, "Synthetic continued pretraining" (EntiGraph): for each document, a
    model first lists its salient entities; then, for sampled pairs and triples of them, it
    writes how they relate in the document's context. Each answer is a new document in
    ``generated/`` (id ``ID#entigraph-K``, with ``synthesized_from`` and its ``entities``);
    the original is kept. The sampler is seeded by ``seed`` and the document's id, and the
    budget is the number of pairs and triples per document with the ``llm:`` block's caps
    (``max_requests``, ``max_cost_usd``) over the run: Synthetic data's value depends on the
    query budget (Balancing Cost and Effectiveness of Synthetic Data Generation Strategies
    for LLMs, 2024), so it is a parameter, not an accident.
    """

    name: ClassVar[str] = "entigraph"
    kind: ClassVar[str] = "filter"  # type: ignore[assignment]
    Params: ClassVar[type[StepParams]] = EntiGraphParams
    params: EntiGraphParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "entities": pa.int32(), "generated": pa.int32(), "error": pa.string()}

    def combinations(self, doc: str, entities: list[str]) -> list[tuple[str, ...]]:
        """The seeded sample of pairs, then triples, of ``entities`` for document ``doc``."""
        rng = np.random.default_rng([self.params.seed, xxhash.xxh64_intdigest(doc.encode())])
        chosen: list[tuple[str, ...]] = []
        for size, wanted in ((2, self.params.pairs_per_doc), (3, self.params.triples_per_doc)):
            total = math.comb(len(entities), size)
            if not wanted or not total:
                continue
            if total <= MAX_LISTED:
                every = list(itertools.combinations(range(len(entities)), size))
                picks = sorted(every[i] for i in rng.choice(total, size=min(wanted, total), replace=False))
            else:  # too many to list (1,000 entities make 166M triples): draw until enough differ
                drawn: set[tuple[int, ...]] = set()
                while len(drawn) < wanted:
                    drawn.add(tuple(sorted(rng.choice(len(entities), size=size, replace=False).tolist())))
                picks = sorted(drawn)
            chosen += [tuple(entities[i] for i in pick) for pick in picks]
        return chosen

    def compute_rows(self, table: pa.Table, texts: list[str]) -> StepOutput:
        prompts = load_prompts("entigraph")
        ids, sources = ids_and_sources(table)
        urls = table.column(URL).to_pylist()
        contexts = [text[: self.params.max_doc_chars] for text in texts]
        extracted = self.ask([
            (doc, user(fill(prompts["entities"]["user"], text=context), prompts["entities"].get("system")), 0)
            for doc, context in zip(ids, contexts, strict=True)])
        entity_lists = [parse_entities(a.text, self.params.max_entities) if a.text is not None else None
                        for a in extracted]
        combos = [self.combinations(doc, ents) if ents else []
                  for doc, ents in zip(ids, entity_lists, strict=True)]
        relations = iter(self.ask([
            (doc, user(fill(prompts[f"relation{len(c)}"]["user"], text=context,
                            **{f"entity{i + 1}": e for i, e in enumerate(c)}),
                       prompts[f"relation{len(c)}"].get("system")), 1 + k)
            for doc, context, doc_combos in zip(ids, contexts, combos, strict=True)
            for k, c in enumerate(doc_combos)]))

        signals: dict[str, list[Any]] = {name: [] for name in self.signal_types}
        for doc, source, url, answer, ents, doc_combos in zip(
                ids, sources, urls, extracted, entity_lists, combos, strict=True):
            answers = [next(relations) for _ in doc_combos]
            failed = first_failure([answer, *answers])
            signals["entities"].append(len(ents) if ents is not None else None)
            if failed is not None:
                signals["generated"].append(0)
                signals["error"].append(describe_failure(failed))
                continue
            if not ents:
                signals["generated"].append(0)
                signals["error"].append(f"{LLM_UNPARSEABLE}: no entities in the answer")
                continue
            made = 0
            for k, (combo, relation) in enumerate(zip(doc_combos, answers, strict=True)):
                text = (relation.text or "").strip()
                if text:
                    self.generate({"id": f"{doc}#entigraph-{k}", "text": text, "source": source, "url": url,
                                   "synthesized_from": doc, "entities": json.dumps(list(combo)),
                                   "generated_by": self.name})
                    made += 1
            signals["generated"].append(made)
            signals["error"].append(None)
        return StepOutput(signals)

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        return failure_reasons(signals["error"])


def parse_entities(answer: str, limit: int) -> list[str]:
    """The entities of an extraction answer: the paper's JSON (``{"entities": [...]}``, or a
    bare list, inside a code fence or not), else a bulleted or numbered list; distinct, in
    order, at most ``limit``."""
    found: list[Any] = []
    for candidate in [*_FENCE.findall(answer), answer]:
        try:
            data = json.loads(candidate.strip())
        except ValueError:
            start, end = candidate.find("{"), candidate.rfind("}")
            try:
                data = json.loads(candidate[start:end + 1]) if 0 <= start < end else None
            except ValueError:
                data = None
        if isinstance(data, dict):
            data = data.get("entities")
        if isinstance(data, list):
            found = data
            break
    if not found:
        found = _BULLET.findall(answer)
    out: list[str] = []
    for item in found:
        name = " ".join(str(item).split())[:MAX_ENTITY_CHARS] if isinstance(item, str | int | float) else ""
        if name and name not in out:
            out.append(name)
    return out[:limit]
