"""Tokenizers: training, loading, the tiktoken engine's identical ids, and bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from assay.prepare.tokenizer import (
    TokenizerError,
    byte_alphabet,
    encoder_from_json,
    load_encoder,
    tiktoken_tables,
    train_encoder,
)


def test_trained_tokenizer_runs_in_tiktoken_with_identical_ids(
        tokenizer_file: Path, sample_docs: list[dict[str, Any]]) -> None:
    encoder = load_encoder(tokenizer_file)
    assert encoder.engine == "tiktoken" and encoder.lossless and encoder.vocab_size == 1024
    texts = [d["text"] for d in sample_docs[1::6]]  # documents it was not trained on, all sources
    texts += ["<|endoftext|> in the text is text", "", "  \n\t ", "naïve 東京 🙂 ''s 12345"]
    fast = encoder.encode(texts, "tiktoken")
    reference = encoder.encode(texts, "hf")
    assert sum(a.size for a in fast) > 100_000
    assert all(np.array_equal(a, b) for a, b in zip(fast, reference, strict=True))
    assert all(encoder.decode(a) == t for a, t in zip(fast, texts, strict=True))
    assert encoder.eos_id not in np.concatenate(fast)  # a document cannot forge the end token


def test_encode_documents_appends_eos(tokenizer_file: Path) -> None:
    encoder = load_encoder(tokenizer_file)
    flat, lengths = encoder.encode_documents(["abc", "", "hello world"])
    assert flat.dtype == np.uint16
    abc, hello = (len(encoder.encode([t])[0]) for t in ("abc", "hello world"))
    assert lengths.tolist() == [abc + 1, 1, hello + 1]
    ends = np.cumsum(lengths) - 1
    assert (flat[ends] == encoder.eos_id).all() and (flat == encoder.eos_id).sum() == 3


def test_training_is_deterministic(sample_docs: list[dict[str, Any]]) -> None:
    texts = [d["text"] for d in sample_docs[::40]]
    a, b = train_encoder(texts, 600), train_encoder(texts, 600)
    assert a.spec_bytes == b.spec_bytes and a.vocab_size == 600


def test_hf_engine_on_request_and_fallback(tokenizer_file: Path) -> None:
    data = tokenizer_file.read_bytes()
    assert encoder_from_json(data, engine="hf").engine == "hf"
    spec = orjson.loads(data)
    spec["normalizer"] = {"type": "Lowercase"}
    lowered = orjson.dumps(spec)
    assert tiktoken_tables(spec) == "the tokenizer has a normalizer"
    encoder = encoder_from_json(lowered)
    assert encoder.engine == "hf" and not encoder.lossless
    with pytest.raises(TokenizerError, match="normalizer"):
        encoder_from_json(lowered, engine="tiktoken")


def test_merges_out_of_id_order_are_not_run_by_tiktoken(tokenizer_file: Path) -> None:
    spec = orjson.loads(tokenizer_file.read_bytes())
    merges = spec["model"]["merges"]
    merges[0], merges[1] = merges[1], merges[0]
    assert "merge order" in tiktoken_tables(spec)


def test_byte_alphabet_is_a_bijection() -> None:
    alphabet = byte_alphabet()
    assert sorted(alphabet.values()) == list(range(256)) and alphabet["!"] == 33 and alphabet["Ġ"] == 32


def test_missing_corrupt_and_eosless_tokenizers(tmp_path: Path, tokenizer_file: Path) -> None:
    with pytest.raises(TokenizerError, match="not found"):
        load_encoder(tmp_path / "nope.json")
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(tokenizer_file.read_bytes()[:5000])
    with pytest.raises(TokenizerError, match=r"not a valid tokenizer\.json"):
        load_encoder(truncated)
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"model": {"type": "Nope"}}')
    with pytest.raises(TokenizerError, match=r"not a valid tokenizer\.json"):
        load_encoder(garbage)
    with pytest.raises(TokenizerError, match=r"'</s>' is not in the vocabulary; special tokens: <\|endof"):
        load_encoder(tokenizer_file, eos="</s>")
    with pytest.raises(TokenizerError, match="too small"):
        train_encoder(["abc"], 100)
