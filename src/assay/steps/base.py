"""The step interface and the registry of step names.

A step maps an Arrow table to an Arrow table, so the same object runs in the local
executor's workers, in a Ray task, or by hand in a notebook:

* a *signal* step appends columns ``<step>.<signal>``;
* a *filter* is a signal step plus :meth:`DocumentStep.decide`, which turns the signals
  and the recipe's thresholds into a ``reason`` column (null = kept);
* a *transform* rewrites ``text`` and records what it changed as signals (it may also
  reject, as C4's rules do after line removal);
* a *global* step needs the whole data set: its per-row keys are computed like signals,
  :meth:`GlobalStep.fit` sees the keys of every row, and :meth:`GlobalStep.apply` marks rows.

Steps never drop rows themselves: the executor splits marked rows into the rejected set.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from assay.documents import REASON, TEXT, signal_column
from assay.errors import AssayError

StepKind = Literal["signal", "filter", "transform", "global"]

# numpy, torch and xxhash take seeds of up to 64 bits; a signed bound keeps JSON and Arrow exact.
MAX_SEED = 2**63 - 1
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class StepError(AssayError, ValueError):
    """A step that cannot run as configured: a file it reads is missing or not what it
    should be, an environment variable it needs is unset."""


@dataclass(frozen=True)
class RunContext:
    """Which run a step is part of, for steps that keep state in the output folder (the
    LLM steps' request cache): the output's URL and the run's id (kept by a resume, new for
    a fresh run or ``--overwrite``)."""

    output: str
    run_id: str


@dataclass
class StepExtras:
    """What a step did besides marking rows, collected by the engine after each batch:
    ``counters`` (numbers, or ``{key: count}`` histograms, summed over every task into the
    manifest) and ``generated``, new documents the step wrote (a rephrasing, a synthesis),
    which go to ``generated/`` with their provenance, outside the input's accounting."""

    counters: dict[str, Any] = field(default_factory=dict)
    generated: pa.Table | None = None


class StepParams(BaseModel):
    """Base of every step's typed parameters. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(ABC):
    """A named, parameterised batch-to-batch operation."""

    name: ClassVar[str]
    kind: ClassVar[StepKind]
    Params: ClassVar[type[StepParams]] = StepParams
    # Every signal the step emits and its Arrow type, so empty shards keep the schema.
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {}

    def __init__(self, params: StepParams | None = None, /, **kwargs: Any) -> None:
        if params is not None and kwargs:
            raise TypeError("pass either a Params object or keyword parameters, not both")
        self.params = params if params is not None else type(self).Params(**kwargs)
        self._ready = False

    def setup(self) -> None:  # noqa: B027  (optional hook: most steps need no setup)
        """Load models or tables. Called once per worker before the first batch."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    @abstractmethod
    def __call__(self, table: pa.Table) -> pa.Table:
        """Return ``table`` with this step's signal columns (and, for filters, ``reason``)."""

    def bind(self, run: RunContext) -> None:  # noqa: B027  (optional hook)
        """Called in each worker before :meth:`setup` when the step runs inside a run."""

    def take_extras(self) -> StepExtras:
        """Counters and generated documents since the last call (see :class:`StepExtras`)."""
        return StepExtras()

    def summarize(self, counters: Mapping[str, Any]) -> dict[str, Any]:
        """The manifest's view of this step's summed counters (keys added to its entry)."""
        return {}

    def identity(self) -> dict[str, Any]:
        """What of the configuration decides the output (the run's fingerprint hashes it):
        by default all of :meth:`describe`; steps leave out settings that only change how
        fast or how dear the work is."""
        return self.describe()

    def thresholds(self) -> list[Threshold]:
        """The recipe's bounds on this step's signals, in the order the step checks them
        (the run report draws each on its signal's histogram); none by default."""
        return []

    def referenced_files(self) -> list[str]:
        """Files or folders (URLs) besides the input whose content decides the output, e.g.
        benchmark sets or an earlier run's index; the engine hashes them into the run's
        fingerprint, so a resume never mixes decisions made from different versions."""
        return []

    def signal_columns(self) -> list[str]:
        return [signal_column(self.name, s) for s in self.signal_types]

    def describe(self) -> dict[str, Any]:
        """The resolved configuration of this step, as written in a recipe."""
        return {self.name: self.params.model_dump(mode="json")}

    def __reduce__(self) -> tuple[Any, ...]:
        # Ship only the parameters to workers; models are loaded there by setup().
        return (_rebuild_step, (type(self), self.params))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({args})"


def _rebuild_step(cls: type[Step], params: StepParams) -> Step:
    return cls(params)


@dataclass
class StepOutput:
    """What a document step computed for a list of texts."""

    signals: dict[str, Sequence[Any]]
    # Rewritten texts (transforms only); None leaves the text untouched.
    texts: list[str] | None = None


class DocumentStep(Step):
    """A step that looks at one document at a time (signal, filter or transform)."""

    @abstractmethod
    def compute(self, texts: list[str]) -> StepOutput:
        """Signals (and, for transforms, new texts) for each text, in order."""

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Rejection reason per row (``None`` entries are kept); ``None`` keeps all rows.

        Works on signal arrays only, so thresholds can change without recomputing them.
        """
        return None

    def compute_rows(self, table: pa.Table, texts: list[str]) -> StepOutput:
        """:meth:`compute` for steps that need more of each row than its text (its id)."""
        return self.compute(texts)

    def __call__(self, table: pa.Table) -> pa.Table:
        self.ensure_setup()
        texts = table.column(TEXT).to_pylist()
        out = self.compute_rows(table, texts)
        for signal, dtype in self.signal_types.items():
            values = pa.array(out.signals[signal], type=dtype)
            table = table.append_column(signal_column(self.name, signal), values)
        if out.texts is not None:
            table = table.set_column(
                table.schema.get_field_index(TEXT), TEXT, pa.array(out.texts, pa.string())
            )
        arrays = {
            s: table.column(signal_column(self.name, s)).to_numpy(zero_copy_only=False)
            for s in self.signal_types
        }
        reasons = self.decide(arrays)  # on an empty table too: the schema must not depend on the rows
        if reasons is not None:
            reasons = list(reasons)
            if out.texts is not None and any(r is not None for r in reasons):
                # A rejected row keeps its original text, so it can be restored as it was.
                restored = [old if r is not None else new
                            for old, new, r in zip(texts, out.texts, reasons, strict=True)]
                table = table.set_column(
                    table.schema.get_field_index(TEXT), TEXT, pa.array(restored, pa.string())
                )
            table = table.append_column(REASON, pa.array(reasons, pa.string()))
        return table


def first_failing_rule(rules: Sequence[tuple[str, np.ndarray]], n_rows: int) -> np.ndarray:
    """For each row, the name of the first rule whose mask is True (else None).

    ``rules`` is an ordered list of ``(reason, mask)``; the order is the order in which
    the published rule set checks them, so the reported reason matches it.
    """
    reasons = np.full(n_rows, None, dtype=object)
    undecided = np.ones(n_rows, dtype=bool)
    for reason, mask in rules:
        hit = undecided & np.asarray(mask, dtype=bool)
        reasons[hit] = reason
        undecided &= ~hit
    return reasons


@dataclass(frozen=True)
class Threshold:
    """One rule of a step as the recipe set it: a row whose ``signal`` is below (``<``) or
    above (``>``) ``value`` fails with ``reason``."""

    reason: str
    signal: str
    op: Literal["<", ">"]
    value: float

    def fails(self, values: np.ndarray) -> np.ndarray:
        return values < self.value if self.op == "<" else values > self.value


def set_thresholds(*rules: tuple[str, str, Literal["<", ">"], float | None]) -> list[Threshold]:
    """The rules ``(reason, signal, op, value)`` whose value is set (None disables a rule)."""
    return [Threshold(reason, signal, op, value) for reason, signal, op, value in rules if value is not None]


def threshold_rules(
    thresholds: Sequence[Threshold], signals: Mapping[str, np.ndarray]
) -> list[tuple[str, np.ndarray]]:
    """``(reason, mask)`` of each threshold, for :func:`first_failing_rule`."""
    return [(t.reason, t.fails(signals[t.signal])) for t in thresholds]


@dataclass
class GlobalState:
    """What :meth:`GlobalStep.fit` learned, split by the shard each part applies to."""

    per_shard: list[Any]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitContext:
    """What the engine gives a global step to fit on: the stage's shards and a worker pool.

    ``shards`` are the intermediate files of the stage that computed the keys (one per
    input shard, in input order; each holds every column, keys included) and
    ``shard_sizes`` their row counts. ``scratch`` is a local folder for intermediate files,
    empty at the start of the fit and removed with the run's work folder. ``map(fn, items)``
    runs a module-level function on each item in the worker processes and returns the
    results in order; ``workers`` says how many run at once. ``publish(folder, name)``
    publishes a local folder the step filled (under ``scratch``) as an artefact of the run,
    ``OUTPUT/NAME`` with ``NAME`` one of ``index/...``, ``models/...``, ``reports/...`` (e.g.
    ``index/minhash_dedup``), under a temporary name then renamed, and returns its URL.
    """

    shards: list[str]
    shard_sizes: list[int]
    scratch: str
    map: Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]
    publish: Callable[[str, str], str]
    workers: int = 1

    def read_columns(self, columns: Sequence[str]) -> pa.Table:
        """The named columns of every shard, concatenated in input order."""
        import pyarrow.parquet as pq

        parts = [pq.read_table(path, columns=list(columns)) for path in self.shards]
        return pa.concat_tables(parts) if parts else pa.table({c: [] for c in columns})


class GlobalStep(Step):
    """A step that needs every row before it can decide (deduplication, selection).

    The engine ends a stage at each global step: ``__call__`` adds the per-row keys in the
    map phase of that stage, :meth:`fit_all` (by default: :meth:`fit` over the key columns
    of every row, in input order) decides, and :meth:`apply` marks the rows of each shard
    in the next stage. Steps whose fit is heavy override :meth:`fit_all` to spread it over
    the workers.
    """

    kind: ClassVar[StepKind] = "global"

    def requires(self) -> list[str]:
        """Columns that earlier steps of the pipeline must produce (checked when planning)."""
        return []

    def fit_all(self, ctx: FitContext) -> GlobalState:
        """Decide for every row of the data set; see :class:`FitContext`."""
        from assay.documents import ID

        keys = ctx.read_columns([ID, *self.signal_columns(), *self.requires()])
        return self.fit(keys, ctx.shard_sizes)

    def fit(self, keys: pa.Table, shard_sizes: Sequence[int]) -> GlobalState:
        """Decide from the key columns (plus ``id``) of all rows, in input order.

        ``shard_sizes`` gives the number of rows of each shard, in the same order, so the
        decision can be split per shard. Steps that override :meth:`fit_all` need not
        implement it.
        """
        raise NotImplementedError(f"{self.name} implements neither fit nor fit_all")

    @abstractmethod
    def apply(self, table: pa.Table, shard_state: Any) -> pa.Table:
        """Mark the rows of one shard (``reason`` column, plus step-specific columns)."""


_REGISTRY: dict[str, type[Step]] = {}

# Where each step is defined: a recipe names a step and only its module is imported (a
# worker that runs four filters does not load the LLM client or the benchmark readers).
# A new step adds its line here; tests/steps/test_contract.py checks the table against
# what the modules register.
STEP_MODULES: dict[str, str] = {
    "c4_quality": "assay.steps.filters.c4",
    "decontaminate": "assay.steps.decontaminate.step",
    "dsir": "assay.steps.select.dsir",
    "embedding_similarity": "assay.steps.select.embedding",
    "entigraph": "assay.steps.llm.entigraph",
    "exact_dedup": "assay.steps.dedup.exact",
    "extract_html": "assay.steps.transforms.extract_html",
    "fineweb_quality": "assay.steps.filters.fineweb",
    "gopher_quality": "assay.steps.filters.gopher_quality",
    "gopher_repetition": "assay.steps.filters.gopher_repetition",
    "language": "assay.steps.filters.language",
    "line_dedup": "assay.steps.dedup.lines",
    "llm_rate": "assay.steps.llm.rate",
    "llm_rephrase": "assay.steps.llm.rephrase",
    "minhash_dedup": "assay.steps.dedup.minhash",
    "perplexity": "assay.steps.select.perplexity",
    "pii": "assay.steps.transforms.pii",
    "prox_refine": "assay.steps.llm.prox_refine",
    "proxy_score": "assay.steps.select.proxy_score",
    "quality_classifier": "assay.steps.select.classifier",
    "sample": "assay.steps.select.sample",
    "semantic_dedup": "assay.steps.dedup.semantic",
    "url_dedup": "assay.steps.dedup.url",
}


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: make a step available to recipes under ``cls.name``."""
    if not cls.__doc__:
        raise TypeError(f"step {cls.__name__} needs a docstring citing its source")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"step name {cls.name!r} is already registered by {existing.__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def step_class(name: str) -> type[Step]:
    """The registered step class for ``name`` (importing its module on first use); KeyError
    lists the valid names."""
    if name not in _REGISTRY and name in STEP_MODULES:
        importlib.import_module(STEP_MODULES[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown step {name!r}; valid steps: {', '.join(step_names())}") from None


def step_names() -> list[str]:
    """Every step a recipe can name: the built-in ones and any registered since."""
    return sorted(STEP_MODULES.keys() | _REGISTRY.keys())
