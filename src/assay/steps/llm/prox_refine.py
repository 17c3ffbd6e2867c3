"""``prox_refine``: ProX's per-document programs, written by a model and run by a whitelist."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field

from assay.llm import prox
from assay.steps.base import StepOutput, StepParams, register
from assay.steps.llm.base import (
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

DROPPED = "prox_drop_doc"  # the document-level program said drop_doc()
TOO_LITTLE_LEFT = "prox_too_little_left"  # under 5% of the words, or under 10, were left
MAX_DIFF_CHARS = 20_000


class ProxParams(LLMParams):
    max_chunk_lines: int = Field(40, ge=1, le=2000, description="lines per chunk-level program")
    max_doc_chars: int = Field(8000, ge=100, description="what the document-level program sees")


@register
class ProxRefine(LLMStep):
    """Refine each document with a program a model writes for it, run by a whitelist parser.

    Zhou et al. 2024, "Programming Every Example: Lifting Pre-training Data Quality like
    Experts at Scale" (ProX). A model first writes a document-level program (``drop_doc()``
    or ``keep_doc()``); a kept document is cut into chunks of numbered lines, and for each
    the model writes a chunk-level program (``remove_lines(start, end)``,
    ``normalize(source_str, target_str)``, ``keep_chunk()``), which is executed. Programs are
    parsed by :mod:`assay.llm.prox` (Python's ``ast``, single calls of allowed names with
    literal arguments; the text is never evaluated). As in the paper, a program with two
    or more unparseable calls is ignored (the document or chunk stays as it was: counted in
    ``ignored_programs``), and a document left with under 5% of its words or under 10 words
    is rejected (``prox_too_little_left``). The unified diff of each refined document is
    kept in ``diff``; calls that could not apply count in ``op_errors``.
    """

    name: ClassVar[str] = "prox_refine"
    kind: ClassVar[str] = "transform"  # type: ignore[assignment]
    Params: ClassVar[type[StepParams]] = ProxParams
    params: ProxParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "doc_program": pa.string(), "chunks": pa.int32(), "op_errors": pa.int32(),
        "unparseable_calls": pa.int32(), "ignored_programs": pa.int32(), "diff": pa.string(),
        "error": pa.string()}

    def chunks(self, text: str) -> list[str]:
        lines = text.split("\n")
        size = self.params.max_chunk_lines
        return ["\n".join(lines[i:i + size]) for i in range(0, len(lines), size)] or [""]

    def compute_rows(self, table: pa.Table, texts: list[str]) -> StepOutput:
        prompts = load_prompts("prox")
        ids, _ = ids_and_sources(table)
        doc_answers = self.ask([
            (doc, user(fill(prompts["doc"]["user"], text=text[: self.params.max_doc_chars]),
                       prompts["doc"].get("system")), 0)
            for doc, text in zip(ids, texts, strict=True)])
        doc_programs = [prox.parse_program(a.text) if a.text is not None else None for a in doc_answers]
        refine = [p is not None and prox.keeps_document(p) for p in doc_programs]
        per_doc = [self.chunks(text) if go else [] for text, go in zip(texts, refine, strict=True)]
        chunk_answers = iter(self.ask([
            (doc, user(fill(prompts["chunk"]["user"], text=prox.numbered(chunk)),
                       prompts["chunk"].get("system")), 1 + k)
            for doc, chunks in zip(ids, per_doc, strict=True) for k, chunk in enumerate(chunks)]))

        signals: dict[str, list[Any]] = {name: [] for name in self.signal_types}
        out_texts: list[str] = []
        rows = zip(texts, doc_answers, doc_programs, per_doc, strict=True)
        for text, doc_answer, doc_program, chunks in rows:
            answers = [next(chunk_answers) for _ in chunks]
            failed = first_failure([doc_answer, *answers])
            row: dict[str, Any] = {"doc_program": doc_answer.text, "chunks": len(chunks), "op_errors": 0,
                                   "unparseable_calls": 0, "ignored_programs": 0, "diff": None,
                                   "error": describe_failure(failed) if failed is not None else None}
            refined = text
            if failed is None and doc_program is not None:
                row["unparseable_calls"] = len(doc_program.unparseable)
                row["ignored_programs"] = int(doc_program.ignored)
                if not prox.keeps_document(doc_program):
                    row["error"] = DROPPED
                else:
                    parts = []
                    for chunk, answer in zip(chunks, answers, strict=True):
                        program = prox.parse_program(answer.text or "")
                        result = prox.run_chunk_program(chunk, program)
                        row["op_errors"] += result.errors
                        row["unparseable_calls"] += len(program.unparseable)
                        row["ignored_programs"] += int(result.ignored)
                        parts.append(result.text)
                    refined = "\n".join(parts)
                    if refined != text:  # a short document the programs left alone stays
                        if prox.too_little_left(text, refined):
                            row["error"] = TOO_LITTLE_LEFT
                        else:
                            row["diff"] = _diff(text, refined)
            for name in self.signal_types:
                signals[name].append(row[name])
            out_texts.append(refined if row["error"] is None else text)
        return StepOutput(signals, texts=out_texts)

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        return failure_reasons(signals["error"])


def _diff(before: str, after: str) -> str:
    lines = difflib.unified_diff(before.split("\n"), after.split("\n"), "before", "after", lineterm="", n=0)
    return "\n".join(lines)[:MAX_DIFF_CHARS]
