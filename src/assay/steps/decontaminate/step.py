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
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Literal

import fsspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator, model_validator

from assay.documents import ID, REASON, TEXT, signal_column
from assay.steps.base import FitContext, GlobalState, GlobalStep, StepError, StepParams, register
from assay.text.hashing import mix64, run_hashes, word_hash_reference

CONTAMINATED = "contaminated"
TOO_MANY_PIECES = "contaminated_too_many_pieces"
NOTHING_LEFT = "contaminated_nothing_left"
PIECE_SEPARATOR = "\n\n"
REPORT_FOLDER = "reports/decontaminate"
MAX_NGRAM = 64

# ------------------------------------------------------------------ normalisation

SEPARATOR, WORD, DROPPED = 0, 1, 2


@cache
def char_tables() -> tuple[np.ndarray, np.ndarray]:
    """``(kinds, lower)`` for every code point: separator (whitespace, as ``str.isspace``),
    dropped (punctuation, symbols, control and format characters) or word; and its
    lower-case form when that is one code point (case folding first, so final sigma and
    sigma agree), else itself."""
    kinds = np.full(0x110000, WORD, dtype=np.uint8)
    lower = np.arange(0x110000, dtype=np.uint32)
    category = unicodedata.category
    # Case and whitespace live in planes 0-1; plane 14 holds tags and selectors (format);
    # the other planes hold ideographs, private use or nothing: word characters as they are.
    for code in (*range(0x20000), *range(0xE0000, 0xE1000)):
        char = chr(code)
        if char.isspace():
            kinds[code] = SEPARATOR
            continue
        if category(char)[0] in "PS" or category(char) in ("Cc", "Cf"):
            kinds[code] = DROPPED
        for mapped in (char.casefold(), char.lower()):
            if len(mapped) == 1:
                lower[code] = ord(mapped)
                break
    return kinds, lower


def normalized_words(text: str) -> list[str]:
    """The words of ``text`` as decontamination compares them: split on whitespace,
    lower-cased, punctuation and symbols removed, empty words dropped
    (``"Don't stop-now!"`` -> ``["dont", "stopnow"]``). The readable definition; :func:`word_table`
    computes the same words' hashes for many texts at once."""
    kinds, lower = char_tables()
    words = []
    for token in text.split():
        word = "".join(chr(lower[ord(c)]) for c in token if kinds[ord(c)] == WORD)
        if word:
            words.append(word)
    return words


def word_hash(word: str) -> int:
    """64-bit hash of one normalised word, as :func:`word_table` computes it (the same
    polynomial hash as near-duplicate shingles use)."""
    return word_hash_reference(word)


@dataclass(frozen=True)
class Words:
    """The normalised words of a list of texts, texts one after the other: each word's
    hash, the number of words of each text, and (if asked) the character span in its
    text of the whitespace-separated token each word comes from."""

    hashes: np.ndarray  # uint64
    counts: np.ndarray  # int64, per text
    starts: np.ndarray | None = None  # int64 character offsets within the word's text
    ends: np.ndarray | None = None


def word_table(texts: Sequence[str], spans: bool = False) -> Words:
    """:func:`normalized_words` of every text, hashed by :func:`word_hash`, with a few
    numpy passes over the whole batch (no Python work per word)."""
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    text_starts = np.cumsum(lengths + 1) - (lengths + 1)
    joined = "\n".join(texts) + "\n"  # a separator after each text
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kinds_table, lower_table = char_tables()
    kinds = kinds_table[codes]
    # Tokens are runs of non-separators; a token's word is its word characters.
    edge = np.diff((kinds != SEPARATOR).astype(np.int8), prepend=0, append=0)
    token_starts = np.flatnonzero(edge == 1)
    token_ends = np.flatnonzero(edge == -1)
    word_chars = np.flatnonzero(kinds == WORD)
    token_of = np.cumsum(edge[:-1] == 1)[word_chars] - 1
    per_token = np.bincount(token_of, minlength=len(token_starts))
    has_word = per_token > 0
    word_lengths = per_token[has_word]
    hashes = run_hashes(lower_table[codes[word_chars]], word_lengths)
    starts = token_starts[has_word]
    counts = np.diff(np.searchsorted(starts, text_starts + lengths), prepend=0)
    if not spans:
        return Words(hashes, counts)
    offset = np.repeat(text_starts, counts)
    return Words(hashes, counts, starts - offset, token_ends[has_word] - offset)


def _ngram_constants() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20200528)  # fixed: benchmark and corpus hashes must agree
    top = np.iinfo(np.uint64).max
    weights = rng.integers(0, top, MAX_NGRAM, dtype=np.uint64, endpoint=True) | np.uint64(1)
    tags = rng.integers(0, top, MAX_NGRAM + 1, dtype=np.uint64, endpoint=True)
    return weights, tags


_WEIGHTS, _TAGS = _ngram_constants()


def ngram_hashes(
    words: np.ndarray, counts: np.ndarray, lengths: Iterable[int]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For each length k in ``lengths``: ``(k, hashes, at)``, the 64-bit hash of every
    run of k consecutive words within a text and the index (in ``words``) of its first
    word. N-grams never span two texts. The hash is a weighted sum of the words' hashes
    with one odd weight per position, tagged with k and mixed (splitmix64's finaliser)."""
    wanted = sorted(set(lengths))
    total = len(words)
    if total == 0 or not wanted:
        return
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    remaining = counts[owner] - (np.arange(total) - first[owner])  # words from here to the end
    padded = np.concatenate([words, np.zeros(wanted[-1], dtype=np.uint64)])
    combined = np.zeros(total, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(1, wanted[-1] + 1):
            combined += padded[k - 1 : k - 1 + total] * _WEIGHTS[k - 1]
            if k in wanted:
                at = np.flatnonzero(remaining >= k)
                yield k, mix64(combined[at] ^ _TAGS[k]), at


# ------------------------------------------------------------------ benchmarks


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


# ------------------------------------------------------------------ cutting


@dataclass(frozen=True)
class Cut:
    """What removing the colliding n-grams (with their context) leaves of one text."""

    occurrences: int  # colliding n-gram occurrences found
    pieces: int  # pieces the text was split into, before short ones are dropped
    kept: tuple[tuple[int, int], ...]  # character spans of the pieces kept, in order
    text_length: int

    def text(self, original: str) -> str:
        return PIECE_SEPARATOR.join(original[a:b] for a, b in self.kept)

    @property
    def chars_kept(self) -> int:
        return sum(b - a for a, b in self.kept)


def collision_spans(text: str, active: np.ndarray, lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Character spans of every occurrence in ``text`` of an n-gram whose hash is in
    ``active`` (from the first character of its first word's token to the end of its
    last word's token), in order of position."""
    words = word_table([text], spans=True)
    assert words.starts is not None and words.ends is not None
    spans = []
    for k, h, at in ngram_hashes(words.hashes, words.counts, lengths):
        hit = at[np.isin(h, active)]
        spans += zip(words.starts[hit].tolist(), words.ends[hit + k - 1].tolist(), strict=True)
    return sorted(spans)


def cut_text(text: str, spans: Sequence[tuple[int, int]], context_chars: int,
             min_piece_chars: int) -> Cut:
    """Remove each span and ``context_chars`` characters either side, as GPT-3 did.

    A window's ends move outward to the nearest whitespace, so no word is cut in half;
    overlapping windows merge. The text between windows makes the pieces (those with
    something besides whitespace); each piece loses its surrounding whitespace, and pieces
    shorter than ``min_piece_chars`` are dropped.
    """
    windows: list[list[int]] = []
    for start, end in spans:
        a, b = max(0, start - context_chars), min(len(text), end + context_chars)
        while a > 0 and not text[a - 1].isspace():
            a -= 1
        while b < len(text) and not text[b].isspace():
            b += 1
        if windows and a <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], b)
        else:
            windows.append([a, b])
    bounds = [0, *(x for w in windows for x in w), len(text)]
    pieces = 0
    kept = []
    for a, b in zip(bounds[0::2], bounds[1::2], strict=True):
        segment = text[a:b]
        stripped = segment.strip()
        if not stripped:
            continue
        pieces += 1
        if len(stripped) >= min_piece_chars:
            lead = len(segment) - len(segment.lstrip())
            kept.append((a + lead, a + lead + len(stripped)))
    return Cut(len(spans), pieces, tuple(kept), len(text))


@dataclass(frozen=True)
class _CutTask:
    shard: str
    rows: np.ndarray  # positions in the shard, ascending
    active: tuple[np.ndarray, ...]  # per row: its benchmark n-gram hashes that count
    lengths: tuple[int, ...]
    context_chars: int
    min_piece_chars: int


def _cut_shard(task: _CutTask) -> tuple[list[str], list[Cut]]:
    """Ids and cuts of the colliding rows of one shard (runs in a worker)."""
    table = pq.read_table(task.shard, columns=[ID, TEXT]).take(pa.array(task.rows))
    ids = table.column(ID).to_pylist()
    cuts = []
    for text, active in zip(table.column(TEXT).to_pylist(), task.active, strict=True):
        spans = collision_spans(text, active, task.lengths)
        cuts.append(cut_text(text, spans, task.context_chars, task.min_piece_chars))
    return ids, cuts


# ------------------------------------------------------------------ the step


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


@dataclass(frozen=True)
class _Decision:
    """A colliding document: its id, cut, rejection reason (None: cut), characters removed
    and the benchmark n-gram hashes that count."""

    id: str
    cut: Cut
    reason: str | None
    chars_removed: int
    hashes: np.ndarray


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
            tasks.append(_CutTask(
                shard=ctx.shards[shard], rows=colliding[mine] - offsets[shard],
                active=tuple(groups[i] for i in mine), lengths=index.lengths,
                context_chars=p.context_chars, min_piece_chars=p.min_piece_chars,
            ))
            task_shards.append(int(shard))
        results = ctx.map(_cut_shard, tasks)

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
                documents.append(_Decision(doc_id, cut, reason, n_removed, hashes))

        report = _Report(index, self.params)
        folder = report.write(ctx.output, documents, distinct[frequent], docs_with[frequent])
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


class _Report:
    """The contamination report: per item, per document and the ignored n-grams."""

    def __init__(self, index: BenchmarkIndex, params: DecontaminateParams) -> None:
        self.index = index
        self.params = params
        self.item_docs: dict[int, dict[str, None]] = defaultdict(dict)
        self.item_ngrams: dict[int, dict[str, None]] = defaultdict(dict)

    def _items_of(self, hashes: np.ndarray) -> list[tuple[int, int]]:
        """(item, entry) pairs for the hashes: every item holding one, one entry each."""
        index = self.index
        lo, hi = index.entries(hashes)
        out = []
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
            seen = set()
            for entry in range(a, b):
                item = int(index.text_item[index.text[entry]])
                if item not in seen:
                    seen.add(item)
                    out.append((item, entry))
        # In reading order: by item, then where the n-gram is in it.
        return sorted(out, key=lambda p: (p[0], int(index.text[p[1]]), int(index.start[p[1]])))

    def _item_ref(self, item: int) -> dict[str, Any]:
        benchmark = self.index.benchmarks[int(self.index.item_benchmark[item])]
        return {"benchmark": benchmark.name, "item": self.index.items[item].id}

    def write(self, output: str, documents: Sequence[_Decision], frequent: np.ndarray,
              frequent_docs: np.ndarray) -> str:
        """Write the three report files under ``output``; return their folder."""
        doc_lines = []
        for doc in documents:
            pairs = self._items_of(doc.hashes)
            ngrams = list(dict.fromkeys(self.index.ngram_text(entry) for _, entry in pairs))
            for item, entry in pairs:
                self.item_docs[item][doc.id] = None
                self.item_ngrams[item][self.index.ngram_text(entry)] = None
            doc_lines.append({
                "id": doc.id, "action": "rejected" if doc.reason else "cut", "reason": doc.reason,
                "collisions": len(doc.hashes), "occurrences": doc.cut.occurrences,
                "pieces": doc.cut.pieces, "pieces_kept": 0 if doc.reason else len(doc.cut.kept),
                "chars_removed": doc.chars_removed,
                "items": [self._item_ref(i) for i in sorted({i for i, _ in pairs})],
                "ngrams": ngrams,
            })
        item_lines = [
            {**self._item_ref(item), "line": self.index.items[item].line,
             "documents": list(self.item_docs[item]), "ngrams": list(self.item_ngrams[item])}
            for item in sorted(self.item_docs)
        ]
        frequent_lines = [
            {"ngram": self.index.ngram_text(entry), "documents": int(docs), **self._item_ref(item)}
            for h, docs in zip(frequent, frequent_docs.tolist(), strict=True)
            for item, entry in self._items_of(np.array([h], dtype=np.uint64))
        ]
        folder = output.rstrip("/") + "/" + REPORT_FOLDER
        fs, path = fsspec.core.url_to_fs(folder)
        fs.makedirs(path, exist_ok=True)
        for name, lines in (("items.jsonl", item_lines), ("documents.jsonl", doc_lines),
                            ("frequent_ngrams.jsonl", frequent_lines)):
            with fs.open(f"{path}/{name}", "wb") as out:
                out.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        return folder

    def benchmark_summary(self) -> dict[str, dict[str, int]]:
        contaminated = np.zeros(len(self.index.benchmarks), dtype=np.int64)
        for item in self.item_docs:
            contaminated[int(self.index.item_benchmark[item])] += 1
        return {
            benchmark.name: {**stats, "items_contaminated": int(contaminated[b])}
            for b, (benchmark, stats) in enumerate(zip(self.index.benchmarks, self.index.stats,
                                                       strict=True))
        }
