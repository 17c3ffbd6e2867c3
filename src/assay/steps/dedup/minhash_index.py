"""The MinHash index a ``minhash_dedup`` run publishes (``OUTPUT/index/minhash_dedup``:
band files, signatures, ids and survivors) and reads back for ``against:``, so a later
corpus is deduplicated against an earlier one without reprocessing it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from assay.documents import ID
from assay.io.writers import write_json
from assay.steps.base import FitContext, StepError
from assay.steps.dedup.lsh import INDEX_STRIDE, OLD_BASE

INDEX_FORMAT = 1


@dataclass
class MinHashIndex:
    """An earlier corpus's index, opened for ``against``."""

    folder: str
    signatures: np.ndarray  # (documents, num_perm) uint32, memory-mapped
    survivor: np.ndarray  # gid of the kept document each document stands for
    ids: pa.Array


def index_folder(path: str) -> str:
    """The index folder that ``path`` names: the folder itself or OUTPUT/index/minhash_dedup."""
    for folder in (path, os.path.join(path, "index", "minhash_dedup")):
        if os.path.exists(os.path.join(folder, "index.json")):
            return folder
    raise StepError(f"against: {path} holds no minhash_dedup index (no index.json in it or "
                     "in index/minhash_dedup/); write one with write_index: true")


def open_index(path: str, expected: dict[str, Any]) -> MinHashIndex:
    """The index at ``path`` (a folder or OUTPUT), refused unless built with ``expected``
    parameters (:func:`assay.steps.dedup.minhash.index_params`)."""
    folder = index_folder(path)
    with open(os.path.join(folder, "index.json"), "rb") as f:
        manifest = orjson.loads(f.read())
    if manifest["params"] != expected:
        raise StepError(f"minhash_dedup against: {path} was built with {manifest['params']}, "
                         f"this step uses {expected}; they must match")
    table = pq.read_table(os.path.join(folder, "ids.parquet"))
    n_docs = table.num_rows
    width = expected["num_perm"]
    signatures = np.memmap(os.path.join(folder, "signatures.u32"), dtype="<u4", mode="r",
                           shape=(n_docs, width)) if n_docs else np.zeros((0, width), np.uint32)
    return MinHashIndex(folder, signatures, table.column("survivor").to_numpy(),
                        table.column(ID).combine_chunks())


def old_survivors(against: list[MinHashIndex], nodes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Signatures and ids of the kept documents that earlier-corpus ``nodes`` stand for."""
    sigs, ids = [], []
    seen: set[tuple[int, int]] = set()
    for node in nodes.tolist():
        which, gid = divmod(node - int(OLD_BASE), INDEX_STRIDE)
        index = against[which]
        kept = int(index.survivor[gid])
        if kept < 0 or (which, kept) in seen:  # removed there as a duplicate of a still older one
            continue
        seen.add((which, kept))
        sigs.append(np.asarray(index.signatures[kept]))
        ids.append(index.ids[kept].as_py())
    if not sigs:  # every one was removed there: this cluster starts afresh
        return np.zeros((0, against[0].signatures.shape[1]), dtype=np.uint32), []
    return np.stack(sigs), ids


def write_index(
    ctx: FitContext, params: dict[str, Any], n_docs: int, survivor: np.ndarray, sig_column: str
) -> str:
    """Publish the band files the bucket tasks wrote, plus signatures and ids."""
    local = os.path.join(ctx.scratch, "index")
    os.makedirs(local, exist_ok=True)
    for name in os.listdir(ctx.scratch):
        if name.startswith("band-"):
            shutil.move(os.path.join(ctx.scratch, name), os.path.join(local, name))
    ids = []
    with open(os.path.join(local, "signatures.u32"), "wb") as out:
        for path in ctx.shards:
            part = pq.read_table(path, columns=[ID, sig_column])
            ids.append(part.column(ID))
            column = part.column(sig_column).combine_chunks()
            sig = column.flatten().to_numpy(zero_copy_only=False) if len(column) else np.zeros(0)
            full = np.zeros((len(column), params["num_perm"]), dtype="<u4")
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            full[valid] = np.asarray(sig, dtype="<u4").reshape(-1, params["num_perm"])
            out.write(full.tobytes())
    id_column = pa.chunked_array(list(chain.from_iterable(c.chunks for c in ids)), pa.string())
    pq.write_table(pa.table({ID: id_column, "survivor": pa.array(survivor, pa.int64())}),
                   os.path.join(local, "ids.parquet"))
    write_json(os.path.join(local, "index.json"), {"params": params, "documents": n_docs})
    return ctx.publish(local, "index/minhash_dedup")
