"""The documents of a prepare recipe's sources: curated outputs read, selected by source,
checked (empty, missing, in two sources), split into training and held-out documents, and
sampled for the tokenizer; the seeds every draw derives from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from assay.documents import ID, SOURCE, TEXT
from assay.errors import AssayError
from assay.io.chunks import FieldMap
from assay.io.files import InputError, resolve_inputs
from assay.io.readers import decode_chunk, plan_chunks
from assay.prepare.mixture import (
    heldout_documents,
)
from assay.prepare.recipe import HeldoutSpec, MixtureSpec

Log = Callable[[str], None]


class PrepareError(AssayError, ValueError):
    """A problem with the inputs or the output of ``assay prepare``, found before the work."""


@dataclass
class SourceDocs:
    """The documents of one mixture source, in the order of its curated output."""

    name: str
    spec_path: str
    files: list[str]
    table: pa.Table  # id, text, source

    @cached_property
    def n_bytes(self) -> np.ndarray:
        return pc.binary_length(self.table.column(TEXT)).to_numpy(zero_copy_only=False).astype(np.int64)


def read_curated(path: str) -> tuple[list[str], pa.Table]:
    """The kept documents (id, text, source) of a curated output folder, or of data files."""
    root = Path(path)
    if root.is_dir():
        data = root / "data" if (root / "data").is_dir() else root
        patterns = [str(data / "*.parquet"), str(data / "*.jsonl*")]
        found = [p for p in patterns if list(Path(data).glob(Path(p).name))]
        if not found:
            raise PrepareError(f"{path}: no *.parquet or *.jsonl* files in {data}; is it an assay output?")
        files = resolve_inputs(found)
    else:
        try:
            files = resolve_inputs(path)
        except InputError as exc:
            raise PrepareError(str(exc)) from None
    tables = []
    for f in files:
        if f.format == "parquet" and f.compression is None:
            t = pq.read_table(f.url, columns=[ID, TEXT, SOURCE])
        else:
            parts = []
            for chunk in plan_chunks([f], 64 << 20):
                table, bad = decode_chunk(chunk, FieldMap())
                if bad:
                    raise PrepareError(f"{bad[0].file}:{bad[0].line}: {bad[0].error}")
                parts.append(table.select([ID, TEXT, SOURCE]))
            t = pa.concat_tables(parts) if parts else None
        if t is not None:
            tables.append(t.cast(pa.schema([(ID, pa.string()), (TEXT, pa.string()), (SOURCE, pa.string())])))
    table = pa.concat_tables(tables).combine_chunks() if tables else None
    if table is None or table.num_rows == 0:
        raise PrepareError(f"{path}: no documents")
    return [f.url for f in files], table


def seed_of(*parts: int | str) -> list[int]:
    return [p if isinstance(p, int) else xxhash.xxh32_intdigest(p.encode()) for p in parts]


def rng_for(*parts: int | str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed_of(*parts))))


def load_sources(mixture: MixtureSpec, *, skip_empty: bool, log: Log) -> tuple[list[SourceDocs], list[str]]:
    """Read every source and check it: selected documents exist, none is empty (unless
    skipped), and no document belongs to two sources."""
    cache: dict[str, tuple[list[str], pa.Table]] = {}
    sources, warnings = [], []
    seen: dict[tuple[str, str], str] = {}

    def path_key(path: str) -> str:
        return str(Path(path).resolve()) if Path(path).exists() else path

    # Only sources that read the same curated output can share a document.
    readers = Counter(path_key(spec.path) for spec in mixture.sources.values())
    for name, spec in mixture.sources.items():
        key = path_key(spec.path)
        if key not in cache:
            cache[key] = read_curated(spec.path)
        files, table = cache[key]
        if spec.select is not None:
            present = set(pc.unique(table.column(SOURCE)).to_pylist())
            unknown = [s for s in spec.select if s not in present]
            if unknown:
                raise PrepareError(f"source {name!r}: select names {', '.join(map(repr, unknown))}, not in "
                                   f"{spec.path}; its sources: {', '.join(sorted(present))}")
            table = table.filter(pc.is_in(table.column(SOURCE), pa.array(spec.select)))
        empty = pc.equal(pc.binary_length(table.column(TEXT)), 0)
        n_empty = int(pc.sum(empty).as_py() or 0)
        if n_empty:
            ids = table.filter(empty).column(ID).to_pylist()[:5]
            if not skip_empty:
                raise PrepareError(f"source {name!r}: {n_empty} empty document(s) in {spec.path} (ids "
                                   f"{', '.join(ids)}{', ...' if n_empty > 5 else ''}); remove them in "
                                   "curation or set skip_empty: true")
            warnings.append(f"source {name!r}: skipped {n_empty} empty document(s)")
            table = table.filter(pc.invert(empty))
        if table.num_rows == 0:
            raise PrepareError(f"source {name!r}: no documents in {spec.path}")
        for doc_id in table.column(ID).to_pylist() if readers[key] > 1 else ():
            other = seen.setdefault((key, doc_id), name)
            if other != name:
                raise PrepareError(f"document {doc_id!r} of {spec.path} is in sources {other!r} and "
                                   f"{name!r}; make their select lists disjoint")
        sources.append(SourceDocs(name, spec.path, files, table))
        log(f"source {name}: {table.num_rows:,} documents, {int(sources[-1].n_bytes.sum()):,} bytes")
    return sources, warnings


def split_heldout(sources: Sequence[SourceDocs], spec: HeldoutSpec, seed: int,
                  log: Log) -> tuple[list[SourceDocs], list[SourceDocs]]:
    """Take each source's held-out documents out (a seeded draw per source); return the
    training sources and the held-out parts (one per source that gives any, same name)."""
    train, held = [], []
    for s in sources:
        pick = heldout_documents(s.table.num_rows, spec.fraction, rng_for(seed, "heldout", s.name),
                                 spec.max_documents)
        if pick.size == 0:
            train.append(s)
            continue
        mask = np.zeros(s.table.num_rows, dtype=bool)
        mask[pick] = True
        held.append(SourceDocs(s.name, s.spec_path, s.files, s.table.filter(pa.array(mask))))
        train.append(SourceDocs(s.name, s.spec_path, s.files, s.table.filter(pa.array(~mask))))
        log(f"source {s.name}: {pick.size:,} document(s) held out")
    return train, held


def training_sample(sources: Sequence[SourceDocs], max_bytes: float, seed: int) -> list[str]:
    """A seeded sample of documents across all sources, at most ``max_bytes`` of text."""
    sizes = np.concatenate([s.n_bytes for s in sources])
    owner = np.concatenate([np.full(s.table.num_rows, i) for i, s in enumerate(sources)])
    row = np.concatenate([np.arange(s.table.num_rows) for s in sources])
    order = rng_for(seed, "tokenizer").permutation(sizes.size)
    keep = order[: max(int(np.searchsorted(np.cumsum(sizes[order]), max_bytes, side="right")), 1)]
    texts = []
    for i in sorted(keep, key=lambda k: (owner[k], row[k])):
        texts.append(sources[owner[i]].table.column(TEXT)[int(row[i])].as_py())
    return texts
