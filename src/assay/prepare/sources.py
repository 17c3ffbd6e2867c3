"""The documents of a prepare recipe's sources, streamed: curated outputs read in batches of
bounded size, indexed once, selected by source, checked (empty, missing, in two sources),
split into training and held-out documents, and sampled for the tokenizer; the seeds every
draw derives from.

Text is never held whole: every pass over a curated output reads it in batches of at most
``batch_rows`` documents and about ``batch_mb`` of text (the recipe's settings). What is kept
for the whole corpus is the :class:`CuratedIndex`, one entry per document: its id, a code of
its curated ``source`` value and its UTF-8 bytes (about 16 bytes plus the id). Everything
that needs a global view works on the index: the held-out split and the tokenizer sample
(seeded draws over document numbers, as before), and the check that no document is in two
sources (an exact set test over the ids).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from assay.documents import ID, SOURCE, TEXT
from assay.errors import AssayError
from assay.io.chunks import FieldMap
from assay.io.files import InputError, InputFile, resolve_inputs
from assay.io.readers import decode_chunk, plan_chunks
from assay.prepare.mixture import heldout_documents
from assay.prepare.recipe import HeldoutSpec, MixtureSpec

Log = Callable[[str], None]
COLUMNS = [ID, TEXT, SOURCE]
SCHEMA = pa.schema([(ID, pa.string()), (TEXT, pa.string()), (SOURCE, pa.string())])


class PrepareError(AssayError, ValueError):
    """A problem with the inputs or the output of ``assay prepare``, found before the work."""


@dataclass(frozen=True)
class Batching:
    """How much a pass over a curated output holds at a time: at most ``rows`` documents and
    about ``text_bytes`` of text (a single larger document is read alone)."""

    rows: int
    text_bytes: int


def curated_files(path: str) -> list[InputFile]:
    """The data files of a curated output folder (its ``data/``), or the files ``path`` names."""
    root = Path(path)
    if root.is_dir():
        data = root / "data" if (root / "data").is_dir() else root
        patterns = [str(data / "*.parquet"), str(data / "*.jsonl*")]
        found = [p for p in patterns if list(Path(data).glob(Path(p).name))]
        if not found:
            raise PrepareError(f"{path}: no *.parquet or *.jsonl* files in {data}; is it an assay output?")
        return resolve_inputs(found)
    try:
        return resolve_inputs(path)
    except InputError as exc:
        raise PrepareError(str(exc)) from None


def read_batches(files: Sequence[InputFile], batching: Batching) -> Iterator[pa.Table]:
    """The documents (id, text, source: strings) of ``files`` in order, a batch at a time.

    Batch boundaries depend only on the files and ``batching``. A record that cannot be read
    raises :class:`PrepareError` naming its file and line (JSONL) or row (Parquet).
    """
    pool = pa.default_memory_pool()
    for f in files:
        direct = f.format == "parquet" and f.compression is None and f.problem is None
        for batch in _parquet_batches(f, batching) if direct else _decoded_batches(f, batching):
            yield batch
            del batch
            pool.release_unused()  # Arrow's allocator keeps what freed batches used otherwise


def _parquet_batches(f: InputFile, batching: Batching) -> Iterator[pa.Table]:
    with fsspec.open(f.url, "rb") as stream:
        try:
            parquet = pq.ParquetFile(stream)
        except (pa.ArrowException, OSError) as exc:
            raise PrepareError(f"{f.url}: not a readable Parquet file ({exc})") from None
        missing = [c for c in COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise PrepareError(f"{f.url}: no column {', '.join(map(repr, missing))}; prepare reads the "
                               "id, text and source columns of a curated output")
        meta = parquet.metadata
        row_bytes = max(sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
                        // max(meta.num_rows, 1), 1)
        size = max(min(batching.rows, batching.text_bytes // row_bytes), 1)
        row = 1
        batches = parquet.iter_batches(batch_size=size, columns=COLUMNS, use_threads=False)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                raise PrepareError(f"{f.url}:{row}: corrupt Parquet data from this row on ({exc})") from None
            if batch is None:
                return
            yield _checked(pa.Table.from_batches([batch]), f.url, row)
            row += batch.num_rows


def _checked(table: pa.Table, url: str, first_row: int) -> pa.Table:
    """``table`` with string columns; :class:`PrepareError` at the first null value."""
    try:
        table = table.select(COLUMNS).cast(SCHEMA)
    except (pa.ArrowException, ValueError) as exc:
        raise PrepareError(f"{url}: the id, text and source columns must be strings ({exc})") from None
    for name in COLUMNS:
        column = table.column(name)
        if column.null_count:
            row = first_row + int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
            raise PrepareError(f"{url}:{row}: {name} is null; every document needs a {name}")
    return table


def _decoded_batches(f: InputFile, batching: Batching) -> Iterator[pa.Table]:
    for chunk in plan_chunks([f], batching.text_bytes):
        table, bad = decode_chunk(chunk, FieldMap())
        if bad:
            where = f"{bad[0].file}:{bad[0].line}" if bad[0].line else bad[0].file
            raise PrepareError(f"{where}: {bad[0].error}")
        table = table.select(COLUMNS)
        for start in range(0, table.num_rows, batching.rows):
            yield table.slice(start, batching.rows)


@dataclass
class CuratedIndex:
    """What one pass over a curated output learns, per document in file order: its id, its
    curated source (a code into ``names``) and its UTF-8 bytes; and the row after each batch,
    so later passes can check they read the same documents."""

    path: str
    files: list[InputFile]
    batching: Batching
    ids: pa.ChunkedArray
    codes: np.ndarray  # int32, into names
    names: list[str]
    n_bytes: np.ndarray  # int64
    ends: np.ndarray  # int64

    def batches(self) -> Iterator[tuple[int, pa.Table]]:
        """Every batch again, with the index row of its first document."""
        start = 0
        for k, table in enumerate(read_batches(self.files, self.batching)):
            if k >= self.ends.size or start + table.num_rows != self.ends[k]:
                raise PrepareError(f"{self.path}: its files changed while prepare was reading them")
            yield start, table
            start = int(self.ends[k])
        if start != (int(self.ends[-1]) if self.ends.size else 0):
            raise PrepareError(f"{self.path}: its files changed while prepare was reading them")


def index_curated(path: str, batching: Batching) -> CuratedIndex:
    """Read a curated output once, a batch at a time, into its :class:`CuratedIndex`."""
    files = curated_files(path)
    ids, codes, sizes, ends = [], [], [], []
    lookup: dict[str, int] = {}
    n = 0
    for table in read_batches(files, batching):
        if table.num_rows == 0:
            continue
        encoded = pc.dictionary_encode(table.column(SOURCE)).combine_chunks()
        local = np.array([lookup.setdefault(v, len(lookup)) for v in encoded.dictionary.to_pylist()],
                         dtype=np.int32)
        codes.append(local[encoded.indices.to_numpy()])
        sizes.append(pc.binary_length(table.column(TEXT)).to_numpy().astype(np.int64))
        ids.extend(table.column(ID).chunks)
        n += table.num_rows
        ends.append(n)
    if n == 0:
        raise PrepareError(f"{path}: no documents")
    return CuratedIndex(path, files, batching, pa.chunked_array(ids, pa.string()), np.concatenate(codes),
                        list(lookup), np.concatenate(sizes), np.array(ends, dtype=np.int64))


@dataclass
class SourceDocs:
    """The documents of one mixture source (or its held-out part): rows of a curated index,
    in the order of the curated output."""

    name: str
    spec_path: str
    index: CuratedIndex
    rows: np.ndarray  # int64 index rows, increasing

    @property
    def files(self) -> list[str]:
        return [f.url for f in self.index.files]

    @property
    def n_documents(self) -> int:
        return int(self.rows.size)

    @cached_property
    def n_bytes(self) -> np.ndarray:
        return self.index.n_bytes[self.rows]

    @cached_property
    def curated(self) -> np.ndarray:
        """Each document's curated source, as a code into ``index.names``."""
        return self.index.codes[self.rows]

    def ids(self) -> pa.Array:
        return self.index.ids.take(pa.array(self.rows)).combine_chunks()

    def part(self, mask: np.ndarray) -> SourceDocs:
        return SourceDocs(self.name, self.spec_path, self.index, self.rows[mask])

    def within(self, start: int, stop: int) -> np.ndarray:
        """Positions, in a batch of index rows ``[start, stop)``, of this source's documents."""
        a, b = np.searchsorted(self.rows, [start, stop])
        return self.rows[a:b] - start


def seed_of(*parts: int | str) -> list[int]:
    return [p if isinstance(p, int) else xxhash.xxh32_intdigest(p.encode()) for p in parts]


def rng_for(*parts: int | str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed_of(*parts))))


def _path_key(path: str) -> str:
    return str(Path(path).resolve()) if Path(path).exists() else path


def load_sources(mixture: MixtureSpec, batching: Batching, *, skip_empty: bool,
                 log: Log) -> tuple[list[SourceDocs], list[str]]:
    """Index every source's curated output (each once) and check it: selected documents
    exist, none is empty (unless skipped), and no document belongs to two sources."""
    indexes: dict[str, CuratedIndex] = {}
    sources, warnings = [], []
    # Only sources that read the same curated output can share a document.
    readers = Counter(_path_key(spec.path) for spec in mixture.sources.values())
    for name, spec in mixture.sources.items():
        key = _path_key(spec.path)
        if key not in indexes:
            indexes[key] = index_curated(spec.path, batching)
        index = indexes[key]
        keep = np.ones(index.codes.size, dtype=bool)
        if spec.select is not None:
            unknown = [s for s in spec.select if s not in index.names]
            if unknown:
                raise PrepareError(f"source {name!r}: select names {', '.join(map(repr, unknown))}, not in "
                                   f"{spec.path}; its sources: {', '.join(sorted(index.names))}")
            keep = np.isin(np.array(index.names, dtype=object), spec.select)[index.codes]
        empty = keep & (index.n_bytes == 0)
        n_empty = int(empty.sum())
        if n_empty:
            ids = index.ids.take(pa.array(np.flatnonzero(empty)[:5])).to_pylist()
            if not skip_empty:
                raise PrepareError(f"source {name!r}: {n_empty} empty document(s) in {spec.path} (ids "
                                   f"{', '.join(map(str, ids))}{', ...' if n_empty > 5 else ''}); remove "
                                   "them in curation or set skip_empty: true")
            warnings.append(f"source {name!r}: skipped {n_empty} empty document(s)")
            keep &= ~empty
        if not keep.any():
            raise PrepareError(f"source {name!r}: no documents in {spec.path}")
        sources.append(SourceDocs(name, spec.path, index, np.flatnonzero(keep)))
        log(f"source {name}: {sources[-1].n_documents:,} documents, {int(sources[-1].n_bytes.sum()):,} bytes")
        if readers[key] > 1:
            _check_disjoint(sources)
    return sources, warnings


def _check_disjoint(sources: Sequence[SourceDocs]) -> None:
    """Refuse a document of the last source that an earlier source of the same curated output
    holds (an exact test on the ids; a repeated id inside one source is allowed)."""
    last = sources[-1]
    earlier = [s for s in sources[:-1] if s.index is last.index]
    if not earlier:
        return
    ids = last.ids()
    seen = pa.concat_arrays([s.ids() for s in earlier])
    hits = np.flatnonzero(pc.is_in(ids, value_set=seen).to_numpy(zero_copy_only=False))
    if hits.size:
        doc_id = ids[int(hits[0])]
        other = next(s.name for s in earlier if pc.any(pc.equal(s.ids(), doc_id)).as_py())
        raise PrepareError(f"document {doc_id.as_py()!r} of {last.spec_path} is in sources {other!r} and "
                           f"{last.name!r}; make their select lists disjoint")


def split_heldout(sources: Sequence[SourceDocs], spec: HeldoutSpec, seed: int,
                  log: Log) -> tuple[list[SourceDocs], list[SourceDocs]]:
    """Take each source's held-out documents out (a seeded draw per source); return the
    training sources and the held-out parts (one per source that gives any, same name)."""
    train, held = [], []
    for s in sources:
        pick = heldout_documents(s.n_documents, spec.fraction, rng_for(seed, "heldout", s.name),
                                 spec.max_documents)
        if pick.size == 0:
            train.append(s)
            continue
        mask = np.zeros(s.n_documents, dtype=bool)
        mask[pick] = True
        held.append(s.part(mask))
        train.append(s.part(~mask))
        log(f"source {s.name}: {pick.size:,} document(s) held out")
    return train, held


def training_samples(sources: Sequence[SourceDocs], budgets: Sequence[float], seed: int) -> list[list[str]]:
    """Seeded samples of documents across all sources, one per budget of text bytes: each the
    shortest prefix (at least one document) of one seeded permutation of every document that
    fills its budget, in source and document order. One pass over the sources reads them all."""
    sizes = np.concatenate([s.n_bytes for s in sources])
    first = np.cumsum([0, *(s.n_documents for s in sources)])
    order = rng_for(seed, "tokenizer").permutation(sizes.size)
    cum = np.cumsum(sizes[order])
    picks = [np.sort(order[: max(int(np.searchsorted(cum, b, side="right")), 1)]) for b in budgets]
    wanted = np.unique(np.concatenate(picks))
    owner = np.searchsorted(first, wanted, side="right") - 1
    texts: dict[int, str] = {}
    indexes = {id(s.index): s.index for s in sources}
    for index in indexes.values():
        keys, rows = [], []
        for i, s in enumerate(sources):
            if s.index is index:
                mine = wanted[owner == i]
                keys.append(mine)
                rows.append(s.rows[mine - first[i]])
        found = _read_texts(index, np.unique(np.concatenate(rows)))
        texts.update((k, found[r]) for k, r in zip(np.concatenate(keys).tolist(),
                                                    np.concatenate(rows).tolist(), strict=True))
    return [[texts[k] for k in pick.tolist()] for pick in picks]


def _read_texts(index: CuratedIndex, rows: np.ndarray) -> dict[int, str]:
    """The texts of the given index rows (increasing), read in one pass."""
    out: dict[int, str] = {}
    for start, table in index.batches():
        a, b = np.searchsorted(rows, [start, start + table.num_rows])
        if a == b:
            continue
        picked = table.column(TEXT).take(pa.array(rows[a:b] - start)).to_pylist()
        out.update(zip(rows[a:b].tolist(), picked, strict=True))
    return out
