"""Reading a prepared output with numpy alone: manifest, documents, token files, decoding.

Wherever a phase is asked for, ``"heldout"`` names the held-out split (when the recipe set
``heldout``): the same files as a phase, never part of :attr:`Shards.phases`.

The PyTorch datasets (:mod:`assay.prepare.dataset`) and ``assay prepare --inspect`` are
built on :class:`Shards`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from assay.prepare import layout
from assay.prepare.shards import FormatError, TokenFile
from assay.prepare.tokenizer import Encoder, encoder_from_json

Packing = Literal["concat", "decompose"]


class Shards:
    """A folder written by ``assay prepare``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest_path = self.path / layout.MANIFEST
        if not manifest_path.is_file():
            raise FormatError(f"{manifest_path} not found: is {self.path} the output of `assay prepare`?")
        try:
            self.manifest: dict[str, Any] = orjson.loads(manifest_path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise FormatError(f"{manifest_path}: not valid JSON ({exc})") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != "assay-shards":
            raise FormatError(f"{manifest_path}: not an assay-shards manifest")
        # Opened token files per (packing, phase): the files never change, and a caller
        # reading documents one by one must not re-read an index per document.
        self._opened: dict[tuple[str, int | str], Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_opened": {}}  # memory maps are reopened, not pickled

    def _phase_key(self, phase: int | str | None) -> int | str:
        return layout.HELDOUT if phase == layout.HELDOUT and self.has_heldout else self.phase_index(phase)

    @property
    def phases(self) -> list[str]:
        """The training phases, in order (the held-out split is not one)."""
        return [p["name"] for p in self.manifest["phases"]]

    @property
    def has_heldout(self) -> bool:
        """Whether ``assay prepare`` reserved a held-out split (``heldout`` in the recipe)."""
        return layout.HELDOUT in self.manifest

    def _info(self, phase: int | str | None) -> dict[str, Any]:
        """The manifest entry of a phase, or of the held-out split for ``"heldout"``."""
        if phase == layout.HELDOUT and self.has_heldout:
            return self.manifest[layout.HELDOUT]
        return self.manifest["phases"][self.phase_index(phase)]

    def phase_index(self, phase: int | str | None) -> int:
        if phase is None:
            if len(self.phases) != 1:
                raise FormatError(f"{self.path} has phases {', '.join(self.phases)}: name one")
            return 0
        if isinstance(phase, int):
            return phase
        if phase not in self.phases:
            raise FormatError(f"no phase {phase!r}; phases: {', '.join(self.phases)}")
        return self.phases.index(phase)

    @cached_property
    def encoder(self) -> Encoder:
        tok = self.manifest["tokenizer"]
        return encoder_from_json((self.path / tok["file"]).read_bytes(), eos=tok["eos"], engine="auto")

    @property
    def eos_id(self) -> int:
        return int(self.manifest["tokenizer"]["eos_id"])

    def decode(self, ids: np.ndarray) -> str:
        return self.encoder.decode(ids)

    def documents(self, phase: int | str | None = None) -> pa.Table:
        """The phase's documents in training order: position, source, id, curated_source,
        epoch, tokens (end-of-document token included)."""
        return pq.read_table(self.path / self._info(phase)["documents_file"])

    def packings(self, phase: int | str | None = None) -> list[Packing]:
        info = self._info(phase)
        return [k for k in ("concat", "decompose") if k in info]  # type: ignore[misc]

    def concat_files(self, phase: int | str | None = None) -> list[TokenFile]:
        """The concat-and-chunk token files of a phase, in order (one sequence per document)."""
        key = ("concat", self._phase_key(phase))
        if key not in self._opened:
            info = self._info(phase)
            if "concat" not in info:
                raise FormatError(f"{self.path}: phase has no concat files (packing.method)")
            self._opened[key] = [TokenFile(self.path / f["file"]) for f in info["concat"]["files"]]
        return self._opened[key]

    def buckets(self, phase: int | str | None = None) -> dict[str, tuple[TokenFile, np.ndarray]]:
        """Dataset Decomposition buckets of a phase: ``{"13": (file, pieces), ..., "rest": ...}``
        where ``pieces[i]`` is (document position, token offset) of the file's i-th sequence."""
        cache_key = ("decompose", self._phase_key(phase))
        if cache_key not in self._opened:
            info = self._info(phase)
            if "decompose" not in info:
                raise FormatError(f"{self.path}: phase has no Dataset Decomposition files (packing.method)")
            out = {}
            for key, entry in info["decompose"]["buckets"].items():
                prefix = self.path / entry["file"]
                out[key] = (TokenFile(prefix), np.load(prefix.parent / f"{prefix.name}.pieces.npy"))
            self._opened[cache_key] = out
        return self._opened[cache_key]

    def document_tokens(self, phase: int | str | None, position: int,
                        packing: Packing = "concat") -> np.ndarray:
        """Tokens of the document at ``position`` (end-of-document token included), read from
        the concat files or reassembled from its Dataset Decomposition pieces."""
        if packing == "concat":
            firsts = [f["first_document"] for f in self._info(phase)["concat"]["files"]]
            part = int(np.searchsorted(firsts, position, side="right")) - 1
            return np.asarray(self.concat_files(phase)[part][position - firsts[part]])
        pieces = []
        for file, where in self.buckets(phase).values():
            for i in np.flatnonzero(where[:, 0] == position):
                pieces.append((int(where[i, 1]), np.asarray(file[int(i)])))
        pieces.sort(key=lambda item: item[0])
        return np.concatenate([t for _, t in pieces]) if pieces else np.zeros(0, np.int64)

    def document_text(self, phase: int | str | None, position: int, packing: Packing = "concat") -> str:
        """Decoded text of a document, without its end-of-document token."""
        tokens = self.document_tokens(phase, position, packing)
        if tokens.size and int(tokens[-1]) == self.eos_id:
            tokens = tokens[:-1]
        return self.decode(tokens)
