"""Benchmark test sets: reading them (any JSONL with named text fields) and indexing
their word n-grams for the map phase of the decontaminate step."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import fsspec
import numpy as np
import orjson
from pydantic import Field, field_validator, model_validator

from assay.steps.base import StepError, StepParams
from assay.text.decon_words import ngram_hashes, normalized_words, word_table


class BenchmarkSpec(StepParams):
    """One benchmark file: JSONL (optionally compressed), one item a line."""

    path: str = Field(description="JSONL file (.gz, .zst ... by suffix), local or any fsspec URL")
    fields: list[str] = Field(
        min_length=1,
        description="fields whose text is indexed; a field holds a string or a list of strings "
        "(e.g. answer choices), each string indexed on its own",
    )
    name: str | None = Field(None, description="name in reports; default: the file name without suffixes")
    id_field: str | None = Field(None, description="field naming each item; default: its line number")
    remove: list[str] = Field(
        default_factory=list,
        description="regular expressions removed from every string before indexing (a prompt "
        "template's words, e.g. '^Question:' and 'Answer:$')",
    )

    @field_validator("remove")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"remove: {pattern!r} is not a regular expression ({exc})") from None
        return patterns

    @model_validator(mode="after")
    def _file_is_readable(self) -> BenchmarkSpec:
        read_benchmark(self)
        return self

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        base = os.path.basename(self.path.rstrip("/"))
        for suffix in (".gz", ".zst", ".bz2", ".xz", ".jsonl", ".json"):
            base = base.removesuffix(suffix)
        return base


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark item: its id (``id_field`` or line number), line and texts."""

    id: str | int
    line: int
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Benchmark:
    name: str
    path: str
    items: tuple[BenchmarkItem, ...]


_benchmark_cache: dict[tuple[Any, ...], Benchmark] = {}


def read_benchmark(spec: BenchmarkSpec) -> Benchmark:
    """The items of one benchmark file; ValueError names the file (and line) of a problem."""
    fs, path = fsspec.core.url_to_fs(spec.path)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise StepError(f"benchmark file {spec.path} does not exist") from None
    if info.get("type") == "directory":
        raise StepError(f"benchmark file {spec.path} is a folder; name a JSONL file")
    key = (spec.path, tuple(spec.fields), spec.id_field, tuple(spec.remove), spec.display_name,
           info.get("size"), info.get("mtime"))
    if key in _benchmark_cache:
        return _benchmark_cache[key]
    patterns = [re.compile(p, re.MULTILINE) for p in spec.remove]
    items = []
    with fsspec.open(spec.path, "rb", compression="infer") as stream:
        for line_no, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            where = f"{spec.path}:{line_no}"
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise StepError(f"{where}: invalid JSON ({exc})") from None
            if not isinstance(record, dict):
                raise StepError(f"{where}: an item is a JSON object, got {type(record).__name__}")
            texts = []
            for name in spec.fields:
                if name not in record:
                    raise StepError(f"{where}: item has no field {name!r}; its fields: "
                                     f"{', '.join(record)}")
                value = record[name]
                values = value if isinstance(value, list) else [value]
                if not all(isinstance(v, str) for v in values):
                    raise StepError(f"{where}: field {name!r} holds {type(value).__name__}; "
                                     "expected a string or a list of strings")
                for text in values:
                    for pattern in patterns:
                        text = pattern.sub(" ", text)
                    texts.append(text)
            if spec.id_field is None:
                item_id: str | int = line_no
            elif spec.id_field not in record:
                raise StepError(f"{where}: item has no id field {spec.id_field!r}")
            else:
                item_id = str(record[spec.id_field])
            items.append(BenchmarkItem(item_id, line_no, tuple(texts)))
    if not items:
        raise StepError(f"benchmark file {spec.path} holds no items")
    benchmark = Benchmark(spec.display_name, spec.path, tuple(items))
    _benchmark_cache[key] = benchmark
    return benchmark


@dataclass
class BenchmarkIndex:
    """Every indexed n-gram of the benchmarks, sorted by hash, with where it comes from.

    An entry is a run of ``length`` words from word ``start`` of text ``text``; texts are
    numbered over all items of all benchmarks, in order, and ``text_item`` /
    ``item_benchmark`` lead back to the item and benchmark.
    """

    benchmarks: list[Benchmark]
    hashes: np.ndarray  # uint64, sorted
    text: np.ndarray  # int64 per entry
    start: np.ndarray  # int64 per entry
    length: np.ndarray  # int64 per entry
    texts: list[str]
    text_item: np.ndarray  # int64 per text
    item_benchmark: np.ndarray  # int64 per item
    items: list[BenchmarkItem]
    stats: list[dict[str, int]]  # per benchmark

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(int(k) for k in np.unique(self.length))

    def entries(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each hash: the range of its entries ``(lo, hi)`` in the sorted index."""
        return (np.searchsorted(self.hashes, hashes, side="left"),
                np.searchsorted(self.hashes, hashes, side="right"))

    def ngram_text(self, entry: int) -> str:
        words = _words_of(self.texts[int(self.text[entry])])
        start = int(self.start[entry])
        return " ".join(words[start : start + int(self.length[entry])])


@cache
def _words_of(text: str) -> list[str]:
    return normalized_words(text)


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def build_index(benchmarks: Sequence[Benchmark], ngram: int, min_item_words: int) -> BenchmarkIndex:
    """Index every ``ngram``-gram of every text; a text with fewer words is indexed whole
    (one n-gram of all its words) if it has at least ``min_item_words``, else skipped."""
    texts: list[str] = []
    text_item: list[int] = []
    item_benchmark: list[int] = []
    items: list[BenchmarkItem] = []
    for b, benchmark in enumerate(benchmarks):
        for item in benchmark.items:
            for text in item.texts:
                texts.append(text)
                text_item.append(len(items))
            items.append(item)
            item_benchmark.append(b)
    words = word_table(texts)
    counts = words.counts
    owner = np.repeat(np.arange(len(texts)), counts)
    first = np.cumsum(counts) - counts
    whole = np.unique(counts[(counts >= min_item_words) & (counts < ngram)])
    hashes, text, start, length = [], [], [], []
    for k, h, at in ngram_hashes(words.hashes, counts, [ngram, *whole.tolist()]):
        position = at - first[owner[at]]
        if k < ngram:  # a short text, indexed whole: its only k-gram starting at word 0
            keep = (position == 0) & (counts[owner[at]] == k)
            h, at, position = h[keep], at[keep], position[keep]
        hashes.append(h)
        text.append(owner[at])
        start.append(position)
        length.append(np.full(len(at), k, dtype=np.int64))
    all_hashes = _concat(hashes, np.uint64)
    order = np.argsort(all_hashes, kind="stable")
    text_item_arr = np.asarray(text_item, dtype=np.int64)
    item_benchmark_arr = np.asarray(item_benchmark, dtype=np.int64)
    index = BenchmarkIndex(
        benchmarks=list(benchmarks), hashes=all_hashes[order],
        text=_concat(text, np.int64)[order], start=_concat(start, np.int64)[order],
        length=_concat(length, np.int64)[order], texts=texts, text_item=text_item_arr,
        item_benchmark=item_benchmark_arr, items=items, stats=[],
    )
    text_benchmark = item_benchmark_arr[text_item_arr] if len(texts) else np.zeros(0, np.int64)
    indexed_items = np.zeros(len(items), dtype=bool)
    indexed_items[text_item_arr[index.text]] = True
    for b in range(len(benchmarks)):
        mine = text_benchmark == b
        index.stats.append({
            "items": int((item_benchmark_arr == b).sum()),
            "texts": int(mine.sum()),
            "ngrams": len(np.unique(index.hashes[text_benchmark[index.text] == b])),
            "texts_matched_whole": int((mine & (counts >= min_item_words) & (counts < ngram)).sum()),
            "texts_too_short": int((mine & (counts > 0) & (counts < min_item_words)).sum()),
            "items_without_ngrams": int(((item_benchmark_arr == b) & ~indexed_items).sum()),
        })
    return index


class NgramSet:
    """The distinct benchmark n-gram hashes, for fast membership tests: a table of the
    hashes' top bits rules out almost every n-gram of a document with one lookup, a binary
    search over the sorted hashes settles the rest."""

    def __init__(self, hashes: np.ndarray, lengths: Sequence[int]) -> None:
        self.hashes = np.unique(hashes)
        self.lengths = tuple(lengths)
        bits = int(np.clip(np.ceil(np.log2(max(1, len(self.hashes)) * 32)), 16, 28))
        self._shift = np.uint64(64 - bits)
        self._table = np.zeros(1 << bits, dtype=bool)
        self._table[(self.hashes >> self._shift).astype(np.intp)] = True

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        found = self._table[(hashes >> self._shift).astype(np.intp)]
        maybe = np.flatnonzero(found)
        if len(maybe) and len(self.hashes):
            where = np.searchsorted(self.hashes, hashes[maybe])
            where[where == len(self.hashes)] = 0
            found[maybe] = self.hashes[where] == hashes[maybe]
        return found

    def colliding(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, hashes)``: each distinct benchmark n-gram found in each text, sorted by
        row then hash."""
        words = word_table(texts)
        owner = np.repeat(np.arange(len(texts)), words.counts)
        rows, hashes = [np.zeros(0, np.int64)], [np.zeros(0, np.uint64)]
        for _, h, at in ngram_hashes(words.hashes, words.counts, self.lengths):
            hit = self.contains(h)
            rows.append(owner[at[hit]])
            hashes.append(h[hit])
        row, key = np.concatenate(rows), np.concatenate(hashes)
        if len(row) > 1:
            order = np.lexsort((key, row))
            row, key = row[order], key[order]
            distinct = np.ones(len(row), dtype=bool)
            distinct[1:] = (row[1:] != row[:-1]) | (key[1:] != key[:-1])
            row, key = row[distinct], key[distinct]
        return row, key
