"""``llm_rephrase``: WRAP's rewrites of each document in chosen styles, as new documents."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from assay.documents import URL
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

Style = Literal["easy", "medium", "hard", "qa"]
REPLACED = "llm_rephrase_replaced"  # an original whose rephrasings replace it (keep_originals: false)
TOKENS_PER_WORD = 1.3  # English under BPE vocabularies of 32-50k, when no tokenizer is given
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class RephraseParams(LLMParams):
    styles: list[Style] = Field(default_factory=lambda: ["easy", "medium", "hard", "qa"],
                                min_length=1, description="WRAP's styles to write")
    max_chunk_tokens: int = Field(300, ge=16, le=8192,
                                  description="WRAP rephrases chunks of at most ~300 tokens")
    tokenizer: str | None = Field(
        None, description="a tokenizers JSON file to count tokens; default: words x 1.3")
    keep_originals: bool = Field(True, description="false: originals are rejected as replaced")


@register
class LLMRephrase(LLMStep):
    """Rephrase each document in WRAP's styles with an instruct model, as new documents.

    Maini et al. 2024, "Rephrasing the Web: A Recipe for Compute and Data-Efficient Language
    Modeling" (WRAP): web text is cut into chunks of at most ~300 tokens, each chunk is
    rewritten by an instruct model in one of four styles (easy, like for a toddler; medium,
    like Wikipedia; hard, terse and abstruse; qa, as questions and answers) with the paper's
    prompts, and the model is trained on real and synthetic text 1:1. Each (document,
    style) becomes one document in ``generated/`` (id ``ID#wrap-STYLE``, with
    ``rephrased_from`` and ``style``); the real:synthetic ratio is then set in ``assay
    prepare``, which reads ``generated/`` as a source of its own. Originals are kept, or with
    ``keep_originals: false`` rejected as ``llm_rephrase_replaced``.
    """

    name: ClassVar[str] = "llm_rephrase"
    kind: ClassVar[str] = "filter"  # type: ignore[assignment]
    Params: ClassVar[type[StepParams]] = RephraseParams
    params: RephraseParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "chunks": pa.int32(), "generated": pa.int32(), "error": pa.string()}

    def referenced_files(self) -> list[str]:
        return [self.params.tokenizer] if self.params.tokenizer else []

    @cached_property
    def _tokenizer(self) -> Any:
        if self.params.tokenizer is None:
            return None
        from tokenizers import Tokenizer

        return Tokenizer.from_file(self.params.tokenizer)

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            return int(np.ceil(len(text.split()) * TOKENS_PER_WORD))
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def chunks(self, text: str) -> list[str]:
        """``text`` cut at sentence or line ends into chunks of at most ``max_chunk_tokens``
        (a single longer sentence is its own chunk)."""
        limit = self.params.max_chunk_tokens
        out: list[str] = []
        current: list[str] = []
        size = 0
        for sentence in (s.strip() for s in _SENTENCE_END.split(text)):
            if not sentence:
                continue
            tokens = self.count_tokens(sentence)
            if current and size + tokens > limit:
                out.append(" ".join(current))
                current, size = [], 0
            current.append(sentence)
            size += tokens
        if current:
            out.append(" ".join(current))
        return out

    def compute_rows(self, table: pa.Table, texts: list[str]) -> StepOutput:
        prompts = load_prompts("wrap")
        styles = self.params.styles
        ids, sources = ids_and_sources(table)
        urls = table.column(URL).to_pylist()
        per_doc = [self.chunks(text) for text in texts]
        questions = [
            (doc, user(fill(prompts[style]["user"], text=chunk), prompts[style].get("system")), k)
            for doc, chunks in zip(ids, per_doc, strict=True)
            for style in styles for k, chunk in enumerate(chunks)
        ]
        answers = iter(self.ask(questions))
        signals: dict[str, list[Any]] = {"chunks": [], "generated": [], "error": []}
        for doc, source, url, chunks in zip(ids, sources, urls, per_doc, strict=True):
            mine = {style: [next(answers) for _ in chunks] for style in styles}
            failed = first_failure([a for style_answers in mine.values() for a in style_answers])
            signals["chunks"].append(len(chunks))
            if failed is not None:
                signals["generated"].append(0)
                signals["error"].append(describe_failure(failed))
                continue
            made = 0
            for style, style_answers in mine.items():
                text = "\n\n".join((a.text or "").strip() for a in style_answers).strip()
                if text:
                    self.generate({"id": f"{doc}#wrap-{style}", "text": text, "source": source,
                                   "url": url, "rephrased_from": doc, "style": style,
                                   "generated_by": self.name})
                    made += 1
            signals["generated"].append(made)
            signals["error"].append(None)
        return StepOutput(signals)

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        reasons = failure_reasons(signals["error"])
        if not self.params.keep_originals:
            reasons = np.array([r if r is not None else (REPLACED if g else None)
                                for r, g in zip(reasons, signals["generated"], strict=True)], dtype=object)
        return reasons
