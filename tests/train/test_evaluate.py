"""Held-out evaluation: windows cover each token once, loss and bits per byte agree with a
direct computation, per-source numbers add up; cloze accuracy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from assay.prepare.reader import Shards
from assay.train.evaluate import (
    ClozeItem,
    bits_per_byte,
    cloze_accuracy,
    document_windows,
    evaluate,
    heldout_set,
    read_cloze,
)
from assay.train.model import GPT, GPTConfig


def test_bits_per_byte() -> None:
    assert bits_per_byte(math.log(2) * 100, 100) == pytest.approx(1.0)
    assert bits_per_byte(8 * math.log(2), 1) == pytest.approx(8.0)  # uniform over bytes, one byte
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)


def test_windows_predict_every_token_once_from_the_same_document() -> None:
    tokens = np.arange(10, 33)  # 23 tokens, the last one standing for EOS
    windows = document_windows(tokens, eos_id=0, context=8)
    assert [x.size for x, _ in windows] == [8, 8, 7]
    assert np.array_equal(np.concatenate([y for _, y in windows]), tokens)
    assert windows[0][0][0] == 0 and np.array_equal(windows[1][0], np.arange(17, 25))
    for x, y in windows:
        assert x.size == y.size and np.array_equal(x[1:], y[:-1])


def test_evaluate_matches_a_direct_computation(shards: Path) -> None:
    torch.manual_seed(0)
    s = Shards(shards)
    model = GPT(GPTConfig(s.manifest["tokenizer"]["vocab_size"], context=32, n_layer=1, n_head=1, d_model=16))
    data = heldout_set(s, 32)
    result = evaluate(model, data, max_tokens=512)
    h = s.manifest["heldout"]
    assert result["tokens"] == h["tokens"] and result["bytes"] == h["bytes"]
    # Direct: each held-out document on its own, EOS + document, one window at a time.
    nats = {}
    with torch.no_grad():
        for position, source in enumerate(s.documents("heldout").column("source").to_pylist()):
            doc = s.document_tokens("heldout", position)
            for x, y in document_windows(doc, s.eos_id, 32):
                loss = model(torch.from_numpy(x[None]), torch.from_numpy(y[None]), reduction="none")
                nats[source] = nats.get(source, 0.0) + float(loss.double().sum())
    for source, value in nats.items():
        got = result["sources"][source]
        assert got["loss"] * got["tokens"] == pytest.approx(value, rel=1e-5)
        assert got["bpb"] == pytest.approx(value / math.log(2) / h["sources"][source]["bytes"], rel=1e-5)
    assert result["loss"] == pytest.approx(sum(nats.values()) / h["tokens"], rel=1e-5)
    assert result["bpb"] == pytest.approx(sum(nats.values()) / math.log(2) / h["bytes"], rel=1e-5)
    # An untrained model is about uniform over the vocabulary.
    assert abs(result["loss"] - math.log(512)) < 0.2


def test_heldout_subsets_count_their_own_bytes(shards: Path) -> None:
    s = Shards(shards)
    docs = s.documents("heldout")
    first = (docs.column("curated_source")[0].as_py(), docs.column("id")[0].as_py())
    some = heldout_set(s, 32, max_documents=4)
    assert sum(some.documents.values()) == 4 and len(some.names) > 1  # spread over the sources
    positions = np.linspace(0, docs.num_rows - 1, 4).round().astype(int)
    text = "".join(s.document_text("heldout", int(i)) for i in positions)
    assert sum(some.bytes.values()) == len(text.encode())
    rest = heldout_set(s, 32, exclude={first})
    assert sum(rest.documents.values()) == docs.num_rows - 1
    with pytest.raises(ValueError, match="no held-out document left"):
        heldout_set(s, 32, exclude=set(zip(docs.column("curated_source").to_pylist(),
                                           docs.column("id").to_pylist(), strict=True)))


class _Prefers(torch.nn.Module):
    """A stand-in language model that always predicts token ``favourite``."""

    def __init__(self, favourite: int, vocab: int) -> None:
        super().__init__()
        self.favourite, self.vocab = favourite, vocab

    def forward(self, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        logits = torch.zeros(*x.shape, self.vocab)
        logits[..., self.favourite] = 5.0
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(),
                                                 reduction="none").view(y.shape)


def test_cloze_picks_the_likeliest_choice(tmp_path: Path) -> None:
    def encode(texts: list[str]) -> list[np.ndarray]:
        return [np.array([ord(c) % 50 for c in t], dtype=np.int64) for t in texts]

    favourite = ord("a") % 50
    items = [ClozeItem("q", ("aaa", "bcd"), 0), ClozeItem("q", ("xyz", "a"), 1),
             ClozeItem("q", ("a", "zz"), 1),
             # "aab" has the lower likelihood in total but the higher one per byte.
             ClozeItem("q", ("aab", "b"), 0)]
    got = cloze_accuracy(_Prefers(favourite, 50), encode, 0, items, context=16)
    assert got == {"acc": 2 / 4, "acc_norm": 3 / 4, "items": 4}
    path = tmp_path / "cloze.jsonl"
    path.write_text('{"context": "The sky is", "choices": [" blue", " green"], "answer": 0}\n\n')
    assert read_cloze(path) == [ClozeItem("The sky is", (" blue", " green"), 0)]
    path.write_text('{"context": "x", "choices": ["a"], "answer": 0}\n')
    with pytest.raises(ValueError, match=r"cloze\.jsonl:1"):
        read_cloze(path)
