"""Held-out evaluation: loss and bits per byte, overall and per source; cloze accuracy.

**Held-out loss.** Every document of the held-out split that ``assay prepare`` reserved
(``heldout`` in the prepare recipe; never trained on) is scored on its own: the sequence
``EOS + document`` (the document's own EOS included) is cut into windows of ``context``
predictions, so every token of the document, its first and its EOS included, is predicted
once, from at most ``context`` tokens of the same document. Windows never cross documents.

**Bits per byte** (Gao et al. 2020, The Pile, section 4; Radford et al. 2019 report it for
byte-level models) divides the summed loss in nats by ln 2 and by the UTF-8 bytes of the
documents' text, so models with different tokenizers can be compared on the same text:
``bpb = sum(nats) / (ln 2 x bytes)``. The EOS predictions count in the numerator (a model
must also predict where a document ends); bytes are those of the text alone.

**Cloze accuracy** (the lm-evaluation-harness way, Gao et al. 2021): each item of a JSONL file
``{"context": str, "choices": [str, ...], "answer": int}`` is scored by the log-likelihood of
each choice after the context (``EOS + context + choice``, tokenized as context and choice
separately); ``acc`` takes the best total log-likelihood, ``acc_norm`` the best per UTF-8
byte of the choice. Write choices with their leading space (``" Paris"``) as the text would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch

from assay.prepare.layout import HELDOUT
from assay.prepare.reader import Shards
from assay.train.config import TrainError

LN2 = math.log(2.0)


def bits_per_byte(nats: float, n_bytes: int) -> float:
    """Bits per UTF-8 byte of text: total nats / (ln 2 x bytes)."""
    if n_bytes <= 0:
        raise ValueError("bits per byte needs a positive number of bytes")
    return nats / (LN2 * n_bytes)


def document_windows(tokens: np.ndarray, eos_id: int, context: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input, target) windows that predict every token of a document once: ``EOS +
    tokens`` cut every ``context`` positions (the last window may be shorter)."""
    seq = np.concatenate([[eos_id], np.asarray(tokens, dtype=np.int64)])
    starts = range(0, seq.size - 1, context)
    return [(seq[s: min(s + context, seq.size - 1)], seq[s + 1: s + 1 + context]) for s in starts]


@dataclass
class EvalSet:
    """Held-out windows ready to score: inputs, targets, source of each window, and the
    UTF-8 bytes of each source's documents."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    source: np.ndarray  # int: index into ``names``
    names: list[str]
    bytes: dict[str, int]
    documents: dict[str, int]

    @property
    def n_tokens(self) -> int:
        return sum(t.size for t in self.targets)


def document_keys(docs: Any) -> list[tuple[str, str]]:
    """(curated source, id) of each row of a documents table: a document's identity across
    prepared outputs."""
    return list(zip(docs.column("curated_source").to_pylist(), docs.column("id").to_pylist(), strict=True))


def heldout_set(shards: Shards, context: int, max_documents: int | None = None,
                exclude: set[tuple[str, str]] | None = None, phase: str = HELDOUT) -> EvalSet:
    """The held-out split of ``shards`` as scoring windows (``max_documents``: that many,
    evenly spaced over the split, which lists its documents source by source, for a quicker
    estimate; ``exclude``: leave out documents whose (curated source, id) is in it, e.g. those
    another recipe trains on). ``phase`` names another split to score on instead, e.g. the
    one phase of shards prepared from a target text that no model trains on."""
    if phase == HELDOUT and not shards.has_heldout:
        raise TrainError(f"{shards.path} has no held-out split: add `heldout: {{fraction: 0.01}}` to the "
                         "prepare recipe and run `assay prepare` again")
    docs = shards.documents(phase)
    keys = document_keys(docs)
    keep = [i for i, key in enumerate(keys) if not exclude or key not in exclude]
    if max_documents is not None and max_documents < len(keep):
        spread = np.unique(np.linspace(0, len(keep) - 1, max_documents).round().astype(np.int64))
        keep = [keep[i] for i in spread]
    if not keep:
        raise TrainError(f"{shards.path}: no held-out document left to evaluate on")
    every_document = len(keep) == docs.num_rows
    all_sources = docs.column("source").to_pylist()
    sources = {i: all_sources[i] for i in keep}
    names = sorted(set(sources.values()))
    known = shards.manifest[HELDOUT]["sources"] if phase == HELDOUT else {}  # phases: bytes decoded
    inputs, targets, owner = [], [], []
    n_bytes = dict.fromkeys(names, 0)
    counts = dict.fromkeys(names, 0)
    eos = shards.eos_id
    vocab = int(shards.manifest["tokenizer"]["vocab_size"])
    packing = shards.packings(phase)[0]
    for position in keep:
        tokens = shards.document_tokens(phase, position, packing)
        if tokens.size and int(tokens.max()) >= vocab:
            split = "held-out" if phase == HELDOUT else phase
            raise TrainError(f"{shards.path}: {split} document {position} holds token id "
                             f"{int(tokens.max()):,}, outside the tokenizer's vocabulary of {vocab:,}; "
                             "the token files are damaged")
        name = sources[position]
        counts[name] += 1
        if not every_document or "bytes" not in known.get(name, {}):
            body = tokens[:-1] if tokens.size and int(tokens[-1]) == eos else tokens
            n_bytes[name] += len(shards.decode(body).encode("utf-8"))
        for x, y in document_windows(tokens, eos, context):
            inputs.append(x)
            targets.append(y)
            owner.append(names.index(name))
    if every_document:
        n_bytes = {name: int(known.get(name, {}).get("bytes", n_bytes[name])) for name in names}
    return EvalSet(inputs, targets, np.asarray(owner, dtype=np.int64), names, n_bytes, counts)


def length_batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Window numbers grouped by similar length, at most ``max_tokens`` padded tokens each."""
    order = np.argsort(-lengths, kind="stable")
    out, current, width = [], [], 0
    for i in order.tolist():
        width = max(width, int(lengths[i])) if current else int(lengths[i])
        if current and width * (len(current) + 1) > max_tokens:
            out.append(np.asarray(current))
            current, width = [], int(lengths[i])
        current.append(i)
    if current:
        out.append(np.asarray(current))
    return out


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: EvalSet, device: torch.device | str = "cpu",
             autocast_dtype: torch.dtype | None = None, max_tokens: int = 1 << 15) -> dict[str, Any]:
    """Loss (nats per token) and bits per byte of ``model`` on ``data``, overall and per
    source. The model is put in eval mode and back."""
    was_training = model.training
    model.eval()
    nats = np.zeros(len(data.names), dtype=np.float64)
    tokens = np.zeros(len(data.names), dtype=np.int64)
    lengths = np.array([t.size for t in data.targets], dtype=np.int64)
    device = torch.device(device)
    for rows in length_batches(lengths, max_tokens):
        width = int(lengths[rows].max())
        x = np.zeros((rows.size, width), dtype=np.int64)
        y = np.full((rows.size, width), -100, dtype=np.int64)
        for r, i in enumerate(rows.tolist()):
            x[r, : lengths[i]] = data.inputs[i]
            y[r, : lengths[i]] = data.targets[i]
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                            enabled=autocast_dtype is not None):
            loss = model(xt, yt, reduction="none")
        per_row = loss.float().sum(dim=1).double().cpu().numpy()
        np.add.at(nats, data.source[rows], per_row)
        np.add.at(tokens, data.source[rows], lengths[rows])
    model.train(was_training)
    sources = {}
    for k, name in enumerate(data.names):
        sources[name] = {"loss": nats[k] / tokens[k], "bpb": bits_per_byte(nats[k], data.bytes[name]),
                         "tokens": int(tokens[k]), "bytes": data.bytes[name],
                         "documents": data.documents[name]}
    total_bytes = sum(data.bytes.values())
    return {"loss": float(nats.sum() / tokens.sum()), "bpb": bits_per_byte(float(nats.sum()), total_bytes),
            "tokens": int(tokens.sum()), "bytes": total_bytes, "sources": sources}


@dataclass(frozen=True)
class ClozeItem:
    """A multiple-choice question: ``context``, ``choices`` and the index of the ``answer``."""

    context: str
    choices: tuple[str, ...]
    answer: int


def read_cloze(path: str | Path) -> list[ClozeItem]:
    """Items of a cloze JSONL file (see the module docstring); errors name the line."""
    items = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            item = ClozeItem(str(row["context"]), tuple(str(c) for c in row["choices"]), int(row["answer"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TrainError(f"{path}:{line_no}: not a cloze item ({exc}); expected "
                             '{"context": str, "choices": [str, ...], "answer": int}') from None
        if not 0 <= item.answer < len(item.choices) or len(item.choices) < 2:
            raise TrainError(f"{path}:{line_no}: answer {item.answer} is not one of "
                             f"{len(item.choices)} choices (at least two)")
        items.append(item)
    return items


@torch.no_grad()
def cloze_accuracy(model: torch.nn.Module, encode: Any, eos_id: int, items: Sequence[ClozeItem],
                   context: int, device: torch.device | str = "cpu") -> dict[str, float]:
    """``acc`` and ``acc_norm`` of ``model`` on ``items``; ``encode(list[str]) -> list[array]``
    is the shards' tokenizer (:meth:`assay.prepare.tokenizer.Encoder.encode`)."""
    was_training = model.training
    model.eval()
    correct = correct_norm = 0
    for item in items:
        ctx, *choices = encode([item.context, *item.choices])
        scores, per_byte = [], []
        for text, tok in zip(item.choices, choices, strict=True):
            seq = np.concatenate([[eos_id], ctx, tok]).astype(np.int64)[-(context + 1):]
            x = torch.from_numpy(seq[:-1][None]).to(device)
            y = torch.from_numpy(seq[1:][None]).to(device)
            nll = model(x, y, reduction="none")[0, -tok.size:].double().sum().item() if tok.size else 0.0
            scores.append(-nll)
            per_byte.append(-nll / max(len(text.encode("utf-8")), 1))
        correct += int(np.argmax(scores) == item.answer)
        correct_norm += int(np.argmax(per_byte) == item.answer)
    model.train(was_training)
    n = max(len(items), 1)
    return {"acc": correct / n, "acc_norm": correct_norm / n, "items": len(items)}
