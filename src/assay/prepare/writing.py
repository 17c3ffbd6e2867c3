"""Writing prepared shards: every source tokenized once, a read batch at a time, into work
files; then each phase's documents in their drawn order as concat windows and Dataset
Decomposition buckets, with the documents table that maps every position back to its source
and id. Each finished piece (a tokenized batch, an output file) gets a progress report, and
a resumed run skips the pieces that have one (:mod:`assay.prepare.progress`)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assay.documents import TEXT
from assay.prepare import layout
from assay.prepare.mixture import Draw
from assay.prepare.packing import REST, Pieces, decompose, gather, windows
from assay.prepare.progress import Progress
from assay.prepare.recipe import PrepareRecipe
from assay.prepare.shards import FormatError, TokenWriter, parse_index
from assay.prepare.sources import Log, PrepareError, SourceDocs, rng_for
from assay.prepare.tokenizer import Encoder

GATHER_TOKENS = 1 << 22  # tokens gathered per block when writing shards
TOKENS = "tokens"  # _work/tokens/SSS-KKKKK.{bin,idx}: batch KKKKK of source SSS (held-out: _work/heldout/)

# Encodes one batch of texts: (tokens with each document's EOS, lengths), here or on a cluster.
EncodeBatch = Callable[[Encoder, pa.Array], tuple[np.ndarray, np.ndarray]]


def encode_here(encoder: Encoder, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Encode a batch in this process (the encoder's threads)."""
    return encoder.encode_documents(texts.to_pylist())


@dataclass
class Tokenized:
    """Where the tokens of some sources are: work files (a ``.bin``/``.idx`` pair per read
    batch; none in a dry run), each source's first document number (and the total), and
    every document's length (EOS included)."""

    parts: list[tuple[Path, int]]  # (prefix, documents)
    first: np.ndarray
    lengths: np.ndarray


@dataclass
class _Collected:
    """A :class:`Tokenized` being built, source by source and batch by batch."""

    parts: list[tuple[Path, int]] = field(default_factory=list)
    first: list[int] = field(default_factory=lambda: [0])
    lengths: list[np.ndarray] = field(default_factory=list)
    documents: int = 0

    def add(self, prefix: Path, lengths: np.ndarray) -> None:
        self.parts.append((prefix, int(lengths.size)))
        self.lengths.append(lengths)
        self.documents += int(lengths.size)

    def end_source(self) -> None:
        self.first.append(self.documents)

    def done(self) -> Tokenized:
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int64)
        return Tokenized(self.parts, np.array(self.first, dtype=np.int64), lengths)


def tokenize_sources(train: Sequence[SourceDocs], held: Sequence[SourceDocs], encoder: Encoder,
                     work: Path | None, progress: Progress, log: Log,
                     encode: EncodeBatch = encode_here) -> tuple[Tokenized, Tokenized]:
    """Tokenize every source, and its held-out part, a read batch at a time into work files
    under ``work`` (none when it is None: a dry run keeps only the lengths). A batch with a
    progress report is not tokenized again: its lengths are read from its work files."""
    held_of = {h.name: h for h in held}
    out = {TOKENS: _Collected(), layout.HELDOUT: _Collected()}
    for i, s in enumerate(train):
        h = held_of.get(s.name)
        members = {TOKENS: s, **({layout.HELDOUT: h} if h is not None else {})}
        n_tokens = 0
        for k, (start, table) in enumerate(s.index.batches()):
            rows = {folder: docs.within(start, start + table.num_rows) for folder, docs in members.items()}
            rows = {folder: picked for folder, picked in rows.items() if picked.size}
            if not rows:
                continue
            unit = f"{i:03d}-{k:05d}"
            finished = progress.done(f"tokenize/{unit}") is not None
            for folder, picked in rows.items():
                prefix = work / folder / unit if work is not None else Path(unit)
                if finished:
                    lengths = _finished_lengths(prefix)
                else:
                    flat, lengths = encode(encoder, table.column(TEXT).take(pa.array(picked)))
                    if work is not None:
                        writer = TokenWriter(prefix, encoder.dtype)
                        writer.write(flat, lengths)
                        writer.close()
                out[folder].add(prefix, lengths.astype(np.int64))
                n_tokens += int(lengths.sum()) if folder == TOKENS else 0
            if not finished:
                progress.record(f"tokenize/{unit}", {folder: int(p.size) for folder, p in rows.items()})
        for folder in members:
            out[folder].end_source()
        log(f"source {s.name}: {n_tokens:,} tokens ({encoder.engine})")
    return out[TOKENS].done(), out[layout.HELDOUT].done()


def _finished_lengths(prefix: Path) -> np.ndarray:
    """The lengths in the work file of a batch an earlier run finished."""
    try:
        return parse_index(prefix.with_name(f"{prefix.name}.idx").read_bytes()).lengths
    except (OSError, FormatError) as exc:
        raise PrepareError(f"{prefix}.idx: the work file of a finished batch is missing or broken ({exc}); "
                           "use --overwrite to start over") from None


class WorkTokens:
    """The tokens of the work files, gathered block by block. Each block maps only the files
    it reads and unmaps them afterwards, so what stays resident is one block, never every
    token of the corpus."""

    def __init__(self, tokenized: Tokenized, dtype: np.dtype) -> None:
        self.prefixes = [prefix for prefix, _ in tokenized.parts]
        counts = np.array([n for _, n in tokenized.parts], dtype=np.int64)
        part_first = np.cumsum(counts) - counts  # each part's first document
        lengths = tokenized.lengths
        starts = np.cumsum(lengths) - lengths
        self.part_of = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
        # Where each document starts in its part's file.
        self.local_start = starts - starts[part_first][self.part_of] if lengths.size else starts
        self.dtype = np.dtype(dtype).newbyteorder("<")

    def gather(self, pieces: Pieces) -> np.ndarray:
        """The tokens of ``pieces`` (documents numbered across all parts), back to back."""
        part = self.part_of[pieces.doc]
        starts = self.local_start[pieces.doc] + pieces.offset
        out = np.empty(int(pieces.length.sum()), dtype=self.dtype)
        begins = np.cumsum(pieces.length) - pieces.length
        for p in np.unique(part).tolist():
            sel = np.flatnonzero(part == p)
            local = Pieces(np.arange(sel.size), np.zeros(sel.size, np.int64), pieces.length[sel])
            path = self.prefixes[p].with_name(self.prefixes[p].name + ".bin")
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                tokens = np.frombuffer(mapped, dtype=self.dtype)
                got = gather(tokens, starts[sel], local)
                del tokens
            if sel.size == pieces.doc.size:
                return got
            out[_ranges(begins[sel], pieces.length[sel])] = got
        return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``starts[i] .. starts[i] + lengths[i]`` for every i, concatenated."""
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]) if ends.size else 0, dtype=np.int64) + np.repeat(starts - (ends - lengths),
                                                                                    lengths)


@dataclass
class PhaseOrder:
    """The documents of one phase in training order."""

    source: np.ndarray  # int32 mixture source number
    doc: np.ndarray  # int64 document number within the source
    epoch: np.ndarray  # int32 pass over the source
    global_doc: np.ndarray  # int64 document number in the work files


def phase_order(seed: int, p: int, draws: Sequence[Sequence[Draw]], first_doc: np.ndarray) -> PhaseOrder:
    """The drawn documents of all sources in phase ``p``, shuffled together (seeded)."""
    source = np.concatenate([np.full(d[p].docs.size, i, dtype=np.int32) for i, d in enumerate(draws)])
    doc = np.concatenate([d[p].docs for d in draws])
    epoch = np.concatenate([d[p].epochs for d in draws])
    perm = rng_for(seed, "phase", p).permutation(doc.size)
    source, doc, epoch = source[perm], doc[perm], epoch[perm]
    return PhaseOrder(source, doc, epoch, first_doc[source] + doc)


def heldout_order(first: np.ndarray) -> PhaseOrder:
    """The held-out documents by source, in curated order."""
    counts = np.diff(first)
    n = int(first[-1])
    return PhaseOrder(np.repeat(np.arange(counts.size, dtype=np.int32), counts),
                      np.concatenate([np.arange(c, dtype=np.int64) for c in counts]),
                      np.zeros(n, dtype=np.int32), np.arange(n, dtype=np.int64))


@dataclass
class Split:
    """What one phase (or the held-out split, ``p`` None) writes from."""

    p: int | None
    name: str
    order: PhaseOrder
    sources: Sequence[SourceDocs]
    tokenized: Tokenized


def write_split(out: Path, split: Split, encoder: Encoder, recipe: PrepareRecipe, info: dict[str, Any],
                progress: Progress) -> None:
    """Write one phase (or the held-out split): its documents table and its packings,
    recorded in ``info``; files with a progress report are left as an earlier run wrote them."""
    tokens = WorkTokens(split.tokenized, encoder.dtype)
    path = layout.documents(split.p, split.name)
    if progress.done(f"write/{path}") is None:
        _publish_table(out / path, documents_table(split))
        progress.record(f"write/{path}", {})
    if recipe.packing.method in ("concat", "both"):
        info["concat"] = write_concat(out, split, tokens, encoder, recipe, progress)
    if recipe.packing.method in ("decompose", "both"):
        info["decompose"] = write_decomposed(out, split, tokens, encoder, recipe, progress)


def documents_table(split: Split) -> pa.Table:
    """``position, source, id, curated_source, epoch, tokens`` of a phase's documents."""
    order, sources = split.order, split.sources
    ids = pa.chunked_array([s.ids() for s in sources], pa.string())
    names = sorted({name for s in sources for name in s.index.names})
    code = {name: i for i, name in enumerate(names)}
    curated = np.concatenate([np.array([code[n] for n in s.index.names], dtype=np.int32)[s.curated]
                              for s in sources])
    return pa.table({
        "position": pa.array(np.arange(order.doc.size, dtype=np.int64)),
        "source": pa.array([s.name for s in sources], pa.string()).take(pa.array(order.source)),
        "id": ids.take(pa.array(order.global_doc)).combine_chunks(),
        "curated_source": pa.array(names, pa.string()).take(pa.array(curated[order.global_doc])),
        "epoch": pa.array(order.epoch),
        "tokens": pa.array(split.tokenized.lengths[order.global_doc]),
    })


def _publish_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _publish_array(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def write_pieces(writer: TokenWriter, tokens: WorkTokens, pieces: Pieces) -> None:
    """Gather ``pieces`` (document numbers in the work files) in blocks and append them."""
    cum = np.cumsum(pieces.length)
    a = 0
    while a < pieces.doc.size:
        base = int(cum[a - 1]) if a else 0
        b = max(int(np.searchsorted(cum, base + GATHER_TOKENS, side="right")), a + 1)
        block = Pieces(pieces.doc[a:b], pieces.offset[a:b], pieces.length[a:b])
        writer.write(tokens.gather(block), block.length)
        a = b


def write_concat(out: Path, split: Split, tokens: WorkTokens, encoder: Encoder, recipe: PrepareRecipe,
                 progress: Progress) -> dict[str, Any]:
    order, lengths = split.order, split.tokenized.lengths
    doc_lengths = lengths[order.global_doc]
    cum = np.cumsum(doc_lengths)
    files, part, a = [], 0, 0
    limit = recipe.packing.shard_tokens
    while a < doc_lengths.size or part == 0:
        base = int(cum[a - 1]) if a else 0
        b = max(int(np.searchsorted(cum, base + limit, side="right")), min(a + 1, doc_lengths.size))
        prefix = out / layout.concat(split.p, split.name, part)
        key = f"write/{prefix.relative_to(out)}"
        sel = order.global_doc[a:b]
        if progress.done(key) is None:
            writer = TokenWriter(prefix, encoder.dtype)
            write_pieces(writer, tokens, Pieces(sel, np.zeros(sel.size, np.int64), lengths[sel]))
            writer.close()
            progress.record(key, {})
        n_tokens = int(lengths[sel].sum())
        files.append({"file": str(prefix.relative_to(out)), "documents": int(b - a),
                      "tokens": n_tokens, "first_document": int(a),
                      "windows": windows(n_tokens, recipe.packing.context)})
        part += 1
        a = b
        if a >= doc_lengths.size:
            break
    return {"context": recipe.packing.context, "files": files,
            "windows": sum(f["windows"] for f in files)}


def write_decomposed(out: Path, split: Split, tokens: WorkTokens, encoder: Encoder, recipe: PrepareRecipe,
                     progress: Progress) -> dict[str, Any]:
    pk, order = recipe.packing, split.order
    buckets = decompose(split.tokenized.lengths[order.global_doc], pk.min_log2, pk.max_log2)
    info: dict[str, Any] = {"min_log2": pk.min_log2, "max_log2": pk.max_log2, "buckets": {}}
    for k, pieces in sorted(buckets.items(), key=lambda kv: -kv[0] if kv[0] != REST else 99):
        prefix = out / layout.bucket(split.p, split.name, k)
        key = f"write/{prefix.relative_to(out)}"
        if progress.done(key) is None:
            writer = TokenWriter(prefix, encoder.dtype)
            write_pieces(writer, tokens, Pieces(order.global_doc[pieces.doc], pieces.offset, pieces.length))
            writer.close()
            _publish_array(out / layout.pieces(split.p, split.name, k),
                           np.stack([pieces.doc, pieces.offset], axis=1))
            progress.record(key, {})
        entry = {"file": str(prefix.relative_to(out)), "pieces": int(pieces.doc.size),
                 "tokens": pieces.n_tokens}
        info["buckets"]["rest" if k == REST else str(k)] = entry
    return info
