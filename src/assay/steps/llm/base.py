"""What every LLM step shares: the ``llm:`` block, the client and its cache, the accounting.

A step asks its questions through one :class:`~assay.llm.client.LLMClient` per worker
process, whose request cache lives in the run's output (``OUTPUT/cache/llm.sqlite``, kept
by ``--overwrite``) and whose spending is that of the run, so a resumed or repeated run
sends nothing already answered. A document whose request failed after the retries
(``llm_error``), whose answer does not parse (``llm_unparseable``) or that a spending cap
skipped (``llm_budget_skipped``) is rejected with that reason, the raw answer or the error
in the step's ``answer`` / ``error`` signals: never dropped in silence, and sent again by a
later run (failures are not cached). A step that asks several questions per document
decides all or nothing: one failed question rejects the document with that question's
reason and writes none of its generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import yaml
from pydantic import Field

from assay.documents import ID, SOURCE
from assay.io.ownership import is_local
from assay.llm.cache import RequestCache
from assay.llm.client import Answer, LLMClient, Request, summarize_counters
from assay.llm.spec import LLMSpec
from assay.steps.base import DocumentStep, RunContext, StepError, StepExtras, StepOutput, StepParams

LLM_UNPARSEABLE = "llm_unparseable"  # an answer that is not in the format the prompt asked for
CACHE_FILE = "cache/llm.sqlite"


class LLMParams(StepParams):
    llm: LLMSpec | None = Field(
        None, description="the model to ask; default: the recipe's top-level llm: block")


class LLMStep(DocumentStep):
    """A document step that asks a language model (see the module docstring)."""

    Params: ClassVar[type[StepParams]] = LLMParams
    params: LLMParams

    def __init__(self, params: StepParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._run: RunContext | None = None
        self._client: LLMClient | None = None
        self._generated: list[dict[str, Any]] = []

    @property
    def spec(self) -> LLMSpec:
        if self.params.llm is None:
            raise StepError(f"step {self.name} needs a model: add an llm: block to the recipe "
                            "(base_url and model of an OpenAI-compatible server)")
        return self.params.llm

    def with_llm(self, spec: LLMSpec) -> LLMStep:
        """This step with the recipe's ``llm:`` block where it names none of its own."""
        if self.params.llm is not None:
            return self
        return type(self)(self.params.model_copy(update={"llm": spec}))

    def bind(self, run: RunContext) -> None:
        if self._run is not None and run != self._run and self._client is not None:
            # The same step object run again into another output (or another run): its
            # cache and budget are that run's, so the client is made again.
            if self._client.cache is not None:
                self._client.cache.close()
            self._client = None
            self._ready = False
        self._run = run

    def setup(self) -> None:
        spec = self.spec
        path = spec.cache
        if path is None and self._run is not None:
            if not is_local(self._run.output):
                raise StepError(f"step {self.name}: the output {self._run.output} is not a local "
                                "folder; set llm.cache to a local file for the request cache")
            path = f"{self._run.output.removeprefix('file://').rstrip('/')}/{CACHE_FILE}"
        cache = RequestCache(path, self._run.run_id if self._run else "") if path else None
        self._client = LLMClient(spec, cache)

    @property
    def client(self) -> LLMClient:
        self.ensure_setup()
        assert self._client is not None
        return self._client

    def compute(self, texts: list[str]) -> StepOutput:
        raise TypeError(f"{self.name} asks by document id: call the step on a table")

    def ask(self, questions: Sequence[tuple[str, list[dict[str, str]], int]]) -> list[Answer]:
        """Answers to ``(doc_id, messages, sample)`` questions, in order, asked all at once."""
        client = self.client
        return client.complete([Request(client.key(m, doc, sample), m) for doc, m, sample in questions])

    def generate(self, row: Mapping[str, Any]) -> None:
        """Keep one new document for ``generated/`` (id, text, source and provenance)."""
        self._generated.append(dict(row))

    def take_extras(self) -> StepExtras:
        counters = self._client.take_stats().counters() if self._client is not None else {}
        generated = None
        if self._generated:
            generated = pa.Table.from_pylist(self._generated)
            self._generated = []
        return StepExtras(counters, generated)

    def summarize(self, counters: Mapping[str, Any]) -> dict[str, Any]:
        return {"llm": summarize_counters(dict(counters))}

    def identity(self) -> dict[str, Any]:
        params = self.params.model_dump(mode="json")
        if self.params.llm is not None:
            params["llm"] = self.params.llm.decisive()
        return {self.name: params}


def ids_and_sources(table: pa.Table) -> tuple[list[str], list[str]]:
    return table.column(ID).to_pylist(), table.column(SOURCE).to_pylist()


def failure_reasons(errors: Sequence[Any]) -> np.ndarray:
    """The reason of each row whose question failed (its ``error`` signal, ``REASON: what
    went wrong``), else None."""
    return np.array([None if e is None else str(e).split(":", 1)[0] for e in errors], dtype=object)


def describe_failure(answer: Answer) -> str:
    """The ``error`` signal of a question without an answer: its reason, then the detail."""
    assert answer.reason is not None
    return f"{answer.reason}: {answer.error}" if answer.error else answer.reason


def first_failure(answers: Sequence[Answer]) -> Answer | None:
    """The first answer that has no text (its reason decides the document's)."""
    return next((a for a in answers if a.reason is not None), None)


@cache
def load_prompts(name: str) -> dict[str, Any]:
    """A step's shipped prompts (``prompts/NAME.yaml``), as published by its paper."""
    text = resources.files("assay.steps.llm").joinpath(f"prompts/{name}.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def fill(template: str, **values: str) -> str:
    """``template`` with each ``{name}`` replaced; never ``str.format``, so braces in a
    document stay as they are."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def user(text: str, system: str | None = None) -> list[dict[str, str]]:
    """Chat messages: an optional system prompt, then ``text`` as the user's turn."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": text}]
