"""Writing prepared shards: every source tokenized once into a work file, then each phase's
documents in their drawn order as concat windows and Dataset Decomposition buckets, with
the documents table that maps every position back to its source and id."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assay.documents import ID, SOURCE, TEXT
from assay.prepare import layout
from assay.prepare.mixture import (
    Draw,
)
from assay.prepare.packing import REST, Pieces, decompose, gather, windows
from assay.prepare.recipe import PrepareRecipe
from assay.prepare.shards import TokenFile, TokenWriter
from assay.prepare.sources import Log, SourceDocs, rng_for
from assay.prepare.tokenizer import Encoder

BATCH_BYTES = 64 << 20  # text tokenized per batch


GATHER_TOKENS = 1 << 24  # tokens gathered per block when writing shards


EncodeMany = Callable[[Encoder, list[pa.ChunkedArray]], Iterable[tuple[np.ndarray, np.ndarray]]]


def encode_here(encoder: Encoder, parts: list[pa.ChunkedArray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Encode each part in this process (the encoder's threads), one part at a time."""
    for part in parts:
        yield encoder.encode_documents(part.to_pylist())


def tokenize_sources(sources: Sequence[SourceDocs], encoder: Encoder, prefix: Path, log: Log,
                     encode: EncodeMany = encode_here, batch_bytes: int = BATCH_BYTES
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize every source into one work file (sources back to back, each document followed
    by EOS); return each source's first document number (and the total) and every length.
    ``encode`` turns a source's batches into tokens and lengths, in order: here, or as tasks
    on a cluster."""
    writer = TokenWriter(prefix, encoder.dtype)
    all_lengths = []
    first = [0]
    for s in sources:
        bounds = batches(s.n_bytes, batch_bytes)
        texts = s.table.column(TEXT)
        parts = [texts.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
        n_tokens = 0
        for flat, lengths in encode(encoder, parts):
            writer.write(flat, lengths)
            all_lengths.append(lengths)
            n_tokens += flat.size
        first.append(first[-1] + s.table.num_rows)
        log(f"source {s.name}: {n_tokens:,} tokens ({encoder.engine})")
    writer.close()
    return np.array(first, dtype=np.int64), np.concatenate(all_lengths)


def batches(sizes: np.ndarray, batch_bytes: int) -> list[int]:
    """Document boundaries of batches of about ``batch_bytes`` of text."""
    cum = np.cumsum(sizes)
    cuts = np.searchsorted(cum, np.arange(batch_bytes, int(cum[-1]) + 1, batch_bytes), side="left") + 1
    return sorted({0, *[int(c) for c in cuts if c < sizes.size], int(sizes.size)})


@dataclass
class PhaseOrder:
    """The documents of one phase in training order."""

    source: np.ndarray  # int32 mixture source number
    doc: np.ndarray  # int64 document number within the source
    epoch: np.ndarray  # int32 pass over the source
    global_doc: np.ndarray  # int64 document number in the work file


def phase_order(seed: int, p: int, draws: Sequence[Sequence[Draw]], first_doc: np.ndarray) -> PhaseOrder:
    """The drawn documents of all sources in phase ``p``, shuffled together (seeded)."""
    source = np.concatenate([np.full(d[p].docs.size, i, dtype=np.int32) for i, d in enumerate(draws)])
    doc = np.concatenate([d[p].docs for d in draws])
    epoch = np.concatenate([d[p].epochs for d in draws])
    perm = rng_for(seed, "phase", p).permutation(doc.size)
    source, doc, epoch = source[perm], doc[perm], epoch[perm]
    return PhaseOrder(source, doc, epoch, first_doc[source] + doc)


def write_heldout(out: Path, info: dict[str, Any], held: Sequence[SourceDocs], first: np.ndarray,
                   lengths: np.ndarray, work_file: Path, encoder: Encoder, recipe: PrepareRecipe) -> None:
    """Write the held-out documents (by source, in curated order) in the packings of the phases."""
    counts = np.diff(first)
    order = PhaseOrder(np.repeat(np.arange(len(held), dtype=np.int32), counts),
                       np.concatenate([np.arange(c, dtype=np.int64) for c in counts]),
                       np.zeros(int(first[-1]), dtype=np.int32), np.arange(int(first[-1]), dtype=np.int64))
    write_split(out, None, layout.HELDOUT, order, held, lengths, TokenFile(work_file), encoder, recipe, info)


def write_split(out: Path, p: int | None, name: str, order: PhaseOrder, sources: Sequence[SourceDocs],
                 lengths: np.ndarray, tokens_file: TokenFile, encoder: Encoder, recipe: PrepareRecipe,
                 info: dict[str, Any]) -> None:
    """Write one phase (or the held-out split, ``p`` None): its documents table and its
    packings, recorded in ``info``."""
    write_documents(out, p, name, order, sources, lengths)
    tokens, starts = tokens_file.tokens, tokens_file.starts
    if recipe.packing.method in ("concat", "both"):
        info["concat"] = write_concat(out, p, name, order, tokens, starts, lengths, encoder, recipe)
    if recipe.packing.method in ("decompose", "both"):
        info["decompose"] = write_decomposed(out, p, name, order, tokens, starts, lengths, encoder, recipe)


def write_documents(out: Path, p: int | None, name: str, order: PhaseOrder, sources: Sequence[SourceDocs],
                     lengths: np.ndarray) -> None:
    ids = np.empty(order.doc.size, dtype=object)
    curated = np.empty(order.doc.size, dtype=object)
    for i, s in enumerate(sources):
        mask = order.source == i
        ids[mask] = column_objects(s.table.column(ID))[order.doc[mask]]
        curated[mask] = column_objects(s.table.column(SOURCE))[order.doc[mask]]
    table = pa.table({
        "position": pa.array(np.arange(order.doc.size, dtype=np.int64)),
        "source": pa.array([sources[i].name for i in order.source.tolist()], pa.string()),
        "id": pa.array(ids.tolist(), pa.string()),
        "curated_source": pa.array(curated.tolist(), pa.string()),
        "epoch": pa.array(order.epoch),
        "tokens": pa.array(lengths[order.global_doc]),
    })
    path = out / layout.documents(p, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def column_objects(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def write_pieces(writer: TokenWriter, tokens: np.ndarray, starts: np.ndarray, pieces: Pieces) -> None:
    """Gather ``pieces`` (document numbers in the work file) in blocks and append them."""
    cum = np.cumsum(pieces.length)
    a = 0
    while a < pieces.doc.size:
        base = int(cum[a - 1]) if a else 0
        b = max(int(np.searchsorted(cum, base + GATHER_TOKENS, side="right")), a + 1)
        block = Pieces(pieces.doc[a:b], pieces.offset[a:b], pieces.length[a:b])
        writer.write(gather(tokens, starts, block), block.length)
        a = b


def write_concat(out: Path, p: int | None, name: str, order: PhaseOrder, tokens: np.ndarray,
                  starts: np.ndarray, lengths: np.ndarray, encoder: Encoder,
                  recipe: PrepareRecipe) -> dict[str, Any]:
    doc_lengths = lengths[order.global_doc]
    cum = np.cumsum(doc_lengths)
    files, part, a = [], 0, 0
    limit = recipe.packing.shard_tokens
    while a < doc_lengths.size or part == 0:
        base = int(cum[a - 1]) if a else 0
        b = max(int(np.searchsorted(cum, base + limit, side="right")), min(a + 1, doc_lengths.size))
        prefix = out / layout.concat(p, name, part)
        writer = TokenWriter(prefix, encoder.dtype)
        sel = order.global_doc[a:b]
        write_pieces(writer, tokens, starts, Pieces(sel, np.zeros(sel.size, np.int64), lengths[sel]))
        writer.close()
        files.append({"file": str(prefix.relative_to(out)), "documents": int(b - a),
                      "tokens": writer.n_tokens, "first_document": int(a),
                      "windows": windows(writer.n_tokens, recipe.packing.context)})
        part += 1
        a = b
        if a >= doc_lengths.size:
            break
    return {"context": recipe.packing.context, "files": files,
            "windows": sum(f["windows"] for f in files)}


def write_decomposed(out: Path, p: int | None, name: str, order: PhaseOrder, tokens: np.ndarray,
                      starts: np.ndarray, lengths: np.ndarray, encoder: Encoder,
                      recipe: PrepareRecipe) -> dict[str, Any]:
    pk = recipe.packing
    buckets = decompose(lengths[order.global_doc], pk.min_log2, pk.max_log2)
    info: dict[str, Any] = {"min_log2": pk.min_log2, "max_log2": pk.max_log2, "buckets": {}}
    for k, pieces in sorted(buckets.items(), key=lambda kv: -kv[0] if kv[0] != REST else 99):
        prefix = out / layout.bucket(p, name, k)
        writer = TokenWriter(prefix, encoder.dtype)
        in_work = Pieces(order.global_doc[pieces.doc], pieces.offset, pieces.length)
        write_pieces(writer, tokens, starts, in_work)
        writer.close()
        np.save(out / layout.pieces(p, name, k), np.stack([pieces.doc, pieces.offset], axis=1))
        entry = {"file": str(prefix.relative_to(out)), "pieces": int(pieces.doc.size),
                 "tokens": pieces.n_tokens}
        info["buckets"]["rest" if k == REST else str(k)] = entry
    return info
