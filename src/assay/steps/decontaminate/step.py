"""Benchmark decontamination: word n-gram collisions between training documents and
benchmark test sets, removed as GPT-3 did (Brown et al. 2020, appendix C).

Map phase (every shard, in the workers): the n-gram hashes of each document that are
also benchmark n-gram hashes (almost always none). Fit (the driver, plus the workers for
the few colliding documents): n-grams found in too many training documents are ignored,
the others decide which documents are cut or rejected, and a contamination report is
written to ``OUTPUT/reports/decontaminate/``. Apply (every shard, in the workers): cut
texts are rewritten, rejected documents go to ``rejected/`` with their text unchanged.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from assay.documents import REASON, TEXT, signal_column
from assay.steps.base import FitContext, GlobalState, GlobalStep, StepParams, register
from assay.steps.decontaminate.benchmarks import (
    BenchmarkIndex,
    BenchmarkSpec,
    NgramSet,
    build_index,
    read_benchmark,
)
from assay.steps.decontaminate.cut import PIECE_SEPARATOR, Cut, CutTask, cut_shard
from assay.steps.decontaminate.report import REPORT_FOLDER, Decision, Report
from assay.text.decon_words import MAX_NGRAM

CONTAMINATED = "contaminated"
TOO_MANY_PIECES = "contaminated_too_many_pieces"
NOTHING_LEFT = "contaminated_nothing_left"


class DecontaminateParams(StepParams):
    benchmarks: list[BenchmarkSpec] = Field(min_length=1, description="benchmark files to remove")
    ngram: int = Field(13, ge=1, le=MAX_NGRAM, description="words per n-gram (GPT-3: 13)")
    mode: Literal["gpt3", "drop"] = Field(
        "gpt3",
        description="gpt3: cut the colliding n-grams and their context out of the document; "
        "drop: reject every document with a collision",
    )
    context_chars: int = Field(200, ge=0, description="characters removed either side of a collision")
    min_piece_chars: int = Field(200, ge=0, description="pieces shorter than this are dropped")
    max_pieces: int = Field(10, ge=1, description="documents split into more pieces are rejected")
    max_train_docs: int = Field(
        10, ge=1, description="n-grams found in more training documents than this are ignored"
    )
    min_item_words: int = Field(
        8, ge=1,
        description="benchmark texts shorter than ngram but with at least this many words are "
        "matched whole; shorter ones are skipped (and counted)",
    )

    @model_validator(mode="after")
    def _distinct_names(self) -> DecontaminateParams:
        names = [b.display_name for b in self.benchmarks]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"benchmark name(s) {', '.join(repeated)} used twice; give each a name")
        return self


@dataclass(frozen=True)
class ShardContamination:
    """The colliding rows of one shard: positions, signals, decision and kept spans."""

    num_rows: int
    rows: np.ndarray  # int64 positions within the shard, ascending
    collisions: np.ndarray  # int64 per entry of rows
    pieces: np.ndarray
    chars_removed: np.ndarray
    reasons: list[str | None]
    kept: list[tuple[tuple[int, int], ...]]

    @classmethod
    def empty(cls, num_rows: int) -> ShardContamination:
        none = np.zeros(0, dtype=np.int64)
        return cls(num_rows, none, none, none, none, [], [])


@register
class Decontaminate(GlobalStep):
    """Benchmark decontamination by word n-gram overlap, after GPT-3.

    Brown et al. 2020, "Language Models are Few-Shot Learners", appendix C: 13-gram
    collisions between training documents and every benchmark's test items, with text
    lower-cased and punctuation removed; each colliding 13-gram is removed with 200
    characters either side, the document is split there, pieces under 200 characters are
    discarded and documents split into more than 10 pieces are dropped; 13-grams found in
    more than 10 training documents are ignored (mostly common phrases and legal
    boilerplate). Those are the defaults here. The paper removed whole documents at first
    and moved to cutting because that penalised long documents (books) for one false
    positive; ``mode: drop`` rejects every colliding document instead (as datatrove's
    ``NGramsDecontFilter`` and the first GPT-3 pass did).

    Words: each text is split on whitespace, lower-cased and stripped of punctuation,
    symbols and control characters (deleted, not turned into spaces, as in EleutherAI's
    lm-evaluation-harness decontamination), so "Janet’s ducks," and "janets ducks" match;
    digits stay (a changed number is a changed item). Each string of a benchmark field
    (or each element of a list field, such as answer choices) is indexed on its own:
    n-grams never span two fields. A string of fewer than ``ngram`` words is matched
    whole if it has at least ``min_item_words`` (8, the lower bound of GPT-3's
    per-benchmark N in its overlap analysis), else skipped and counted in the summary.
    ``remove`` strips a prompt template ("Question: ... Answer:") before indexing.

    Cutting: a removed window's ends move outward to the nearest whitespace (no half
    words are left); overlapping windows merge; a piece is the text between windows with
    something besides whitespace, its length counted without surrounding whitespace. The
    pieces are counted before short ones are dropped, so "split into more than 10 pieces"
    is the paper's test of a heavily contaminated document.

    Map phase: the benchmark n-gram hashes are built once per worker (64-bit hashes of
    64-bit word hashes: about n·m/2^64 false collisions for n corpus and m benchmark
    n-grams, 0.0005 for ten billion against a million), and each document keeps only the
    hashes it shares with them (``decontaminate.ngrams``, almost always empty). Fit: the
    number of training documents holding each colliding n-gram; frequent ones are
    ignored, the rest decide. Apply: the kept pieces of a cut document are joined by a
    blank line into one document, keeping its id and metadata (one row in, one row out,
    so every document is accounted for; the blank line stops the pieces reading as one
    sentence). Rejections: ``contaminated`` (drop mode), ``contaminated_too_many_pieces``
    and ``contaminated_nothing_left``; a rejected document keeps its original text.

    Signals: ``collisions`` (distinct benchmark n-grams in the document, frequent ones not
    counted), ``pieces`` (what the text was split into, 1 when untouched) and
    ``chars_removed`` (the whole text for a rejected document). The fit writes
    ``OUTPUT/reports/decontaminate/``: ``items.jsonl`` (each benchmark item found, with the
    documents and n-grams), ``documents.jsonl`` (each document cut or rejected, and why)
    and ``frequent_ngrams.jsonl`` (the n-grams ignored); its summary goes to the manifest.
    """

    name: ClassVar[str] = "decontaminate"
    Params: ClassVar[type[StepParams]] = DecontaminateParams
    # ``ngrams`` is the key of the map phase (dropped by apply); apply adds the others.
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "ngrams": pa.list_(pa.uint64()),
        "collisions": pa.int64(),
        "pieces": pa.int64(),
        "chars_removed": pa.int64(),
    }

    params: DecontaminateParams

    def referenced_files(self) -> list[str]:
        return [b.path for b in self.params.benchmarks]

    def _col(self, signal: str) -> str:
        return signal_column(self.name, signal)

    def index(self) -> BenchmarkIndex:
        """The benchmark index (built on first use)."""
        if not hasattr(self, "_index"):
            p = self.params
            benchmarks = [read_benchmark(spec) for spec in p.benchmarks]
            self._index = build_index(benchmarks, p.ngram, p.min_item_words)
        return self._index

    def setup(self) -> None:
        index = self.index()
        self._ngrams = NgramSet(index.hashes, index.lengths)

    def __call__(self, table: pa.Table) -> pa.Table:
        self.ensure_setup()
        texts = table.column(TEXT).to_pylist()
        rows, hashes = self._ngrams.colliding(texts)
        offsets = np.zeros(len(texts) + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=len(texts)), out=offsets[1:])
        column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(hashes, pa.uint64()))
        return table.append_column(pa.field(self._col("ngrams"), pa.list_(pa.uint64())), column)

    # -- fit ----------------------------------------------------------------------------
    def fit_all(self, ctx: FitContext) -> GlobalState:
        p = self.params
        index = self.index()
        sizes = np.asarray(ctx.shard_sizes, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        gids, keys = [np.zeros(0, np.int64)], [np.zeros(0, np.uint64)]
        for path, offset in zip(ctx.shards, offsets[:-1], strict=True):
            column = pq.read_table(path, columns=[self._col("ngrams")]).column(0).combine_chunks()
            values = column.flatten().to_numpy()
            if len(values):
                lengths = column.value_lengths().fill_null(0).to_numpy()
                gids.append(np.repeat(np.arange(len(lengths), dtype=np.int64) + offset, lengths))
                keys.append(values)
        gid, key = np.concatenate(gids), np.concatenate(keys)
        distinct, inverse, docs_with = np.unique(key, return_inverse=True, return_counts=True)
        frequent = docs_with > p.max_train_docs
        active = ~frequent[inverse.reshape(-1)]
        gid_active, key_active = gid[active], key[active]  # sorted by gid (shards in order)

        colliding = np.unique(gid_active)
        shard_of = np.searchsorted(offsets, colliding, side="right") - 1
        groups = np.split(key_active, np.flatnonzero(np.diff(gid_active)) + 1) if len(gid_active) else []
        tasks, task_shards = [], []
        for shard in np.unique(shard_of):
            mine = np.flatnonzero(shard_of == shard)
            tasks.append(CutTask(
                shard=ctx.shards[shard], rows=colliding[mine] - offsets[shard],
                active=tuple(groups[i] for i in mine), lengths=index.lengths,
                context_chars=p.context_chars, min_piece_chars=p.min_piece_chars,
            ))
            task_shards.append(int(shard))
        results = ctx.map(cut_shard, tasks)

        per_shard = [ShardContamination.empty(int(n)) for n in sizes]
        documents = []
        decided: dict[str, int] = defaultdict(int)
        for task, shard, (ids, cuts) in zip(tasks, task_shards, results, strict=True):
            reasons = [self._decide(c) for c in cuts]
            removed = [c.text_length - (0 if r else c.chars_kept) for c, r in zip(cuts, reasons, strict=True)]
            per_shard[shard] = ShardContamination(
                num_rows=int(sizes[shard]), rows=task.rows,
                collisions=np.array([len(a) for a in task.active], dtype=np.int64),
                pieces=np.array([c.pieces for c in cuts], dtype=np.int64),
                chars_removed=np.array(removed, dtype=np.int64),
                reasons=reasons, kept=[c.kept for c in cuts],
            )
            for doc_id, cut, reason, n_removed, hashes in zip(
                    ids, cuts, reasons, removed, task.active, strict=True):
                decided[reason or "cut"] += 1
                documents.append(Decision(doc_id, cut, reason, n_removed, hashes))

        report = Report(index)
        local = report.write(os.path.join(ctx.scratch, "report"), documents, distinct[frequent],
                             docs_with[frequent])
        folder = ctx.publish(local, REPORT_FOLDER)
        summary: dict[str, Any] = {
            "documents": int(offsets[-1]),
            "documents_with_collisions": len(np.unique(gid)),
            "documents_contaminated": len(colliding),
            "documents_cut": decided.get("cut", 0),
            "documents_rejected": {r: n for r, n in sorted(decided.items()) if r != "cut"},
            "chars_removed": int(sum(d.chars_removed for d in documents)),
            "ngrams_colliding": len(distinct),
            "ngrams_ignored_as_frequent": int(frequent.sum()),
            "benchmarks": report.benchmark_summary(),
            "reports": folder,
        }
        return GlobalState(per_shard=per_shard, summary=summary)

    def _decide(self, cut: Cut) -> str | None:
        p = self.params
        if p.mode == "drop":
            return CONTAMINATED
        if cut.pieces > p.max_pieces:
            return TOO_MANY_PIECES
        if not cut.kept:
            return NOTHING_LEFT
        return None

    # -- apply --------------------------------------------------------------------------
    def apply(self, table: pa.Table, shard_state: ShardContamination) -> pa.Table:
        state = shard_state
        if table.num_rows != state.num_rows:
            raise ValueError(f"shard has {table.num_rows} rows but was fitted with {state.num_rows}")
        table = table.drop_columns([self._col("ngrams")])
        n = table.num_rows
        collisions = np.zeros(n, dtype=np.int64)
        pieces = np.ones(n, dtype=np.int64)
        chars_removed = np.zeros(n, dtype=np.int64)
        reasons = np.full(n, None, dtype=object)
        collisions[state.rows] = state.collisions
        pieces[state.rows] = state.pieces
        chars_removed[state.rows] = state.chars_removed
        reasons[state.rows] = state.reasons
        cut_rows = [(int(r), kept) for r, kept, reason in zip(state.rows, state.kept, state.reasons,
                                                               strict=True) if reason is None]
        if cut_rows:
            texts = table.column(TEXT).to_pylist()
            for row, kept in cut_rows:
                texts[row] = PIECE_SEPARATOR.join(texts[row][a:b] for a, b in kept)
            table = table.set_column(table.schema.get_field_index(TEXT), TEXT,
                                     pa.array(texts, pa.string()))
        table = table.append_column(self._col("collisions"), pa.array(collisions))
        table = table.append_column(self._col("pieces"), pa.array(pieces))
        table = table.append_column(self._col("chars_removed"), pa.array(chars_removed))
        return table.append_column(REASON, pa.array(reasons, pa.string()))
