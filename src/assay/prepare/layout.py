"""Where every file of a prepared output lives.

    SHARDS/
      manifest.json                                  tokenizer, sources, phases, every count
      tokenizer.json                                 the tokenizer the ids belong to
      documents/phase-PP-NAME.parquet                the phase's documents in training order
      concat/phase-PP-NAME/part-KKKKK.{bin,idx}      concat-and-chunk stream (nanoGPT, Megatron)
      decompose/phase-PP-NAME/bucket-KK.{bin,idx}    Dataset Decomposition: pieces of 2^KK tokens
      decompose/phase-PP-NAME/bucket-KK.pieces.npy   (document position, token offset) per piece
      decompose/phase-PP-NAME/rest.{bin,idx,pieces.npy}  document ends shorter than 2^min
      documents/heldout.parquet, concat/heldout/..., decompose/heldout/...
                                                     the held-out split (``heldout`` in the recipe),
                                                     laid out as a phase; never trained on
      _work/, _progress/                             while it runs: the tokenized batches and the
                                                     reports ``--resume`` reads (:mod:`.progress`)
      .assay-output, .assay-lock                     the ownership marker and the one-writer lock
"""

from __future__ import annotations

import re
from pathlib import Path

from assay.prepare.packing import REST

MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
WORK = "_work"
PROGRESS = "_progress"
HELDOUT = "heldout"  # the held-out split's folder name and its name for the reader
# Everything prepare writes at the top of its output: ``--overwrite`` deletes these and nothing else.
NAMES = (MANIFEST, TOKENIZER, "documents", "concat", "decompose", WORK, PROGRESS, "report.html")


def phase_dir(p: int | None, name: str) -> str:
    """``phase-PP-NAME`` with the name reduced to file-safe characters; ``heldout`` for the
    held-out split (``p`` None)."""
    if p is None:
        return HELDOUT
    return f"phase-{p:02d}-{safe_name(name)}"


def safe_name(name: str) -> str:
    """``name`` with every run of characters unsafe in a file name replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def documents(p: int | None, name: str) -> Path:
    return Path("documents") / f"{phase_dir(p, name)}.parquet"


def concat(p: int | None, name: str, part: int) -> Path:
    return Path("concat") / phase_dir(p, name) / f"part-{part:05d}"


def bucket(p: int | None, name: str, log2: int) -> Path:
    return Path("decompose") / phase_dir(p, name) / ("rest" if log2 == REST else f"bucket-{log2:02d}")


def pieces(p: int | None, name: str, log2: int) -> Path:
    prefix = bucket(p, name, log2)
    return prefix.parent / f"{prefix.name}.pieces.npy"
