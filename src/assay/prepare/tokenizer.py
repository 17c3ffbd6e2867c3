"""Tokenizers: train a byte-level BPE on curated text, or load a local ``tokenizer.json``,
and encode documents fast.

The file format is Hugging Face ``tokenizers``' ``tokenizer.json``; nothing is downloaded.
A byte-level BPE whose merges were learned in order (what ``tokenizers``' trainer, GPT-2 and
Llama 3 produce) gives the same ids when its merges run in tiktoken's engine, which is
several times faster here; :func:`tiktoken_tables` converts the file when its structure
allows it, and ``engine: auto`` also checks the ids on a sample of the data before trusting
it. Special tokens that occur *in the text* are encoded as ordinary text by both engines,
so a document can never forge an end-of-document token.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from assay.errors import AssayError

Engine = Literal["auto", "tiktoken", "hf"]
DEFAULT_EOS = "<|endoftext|>"
# The pre-tokenizer regex of GPT-2's byte-level BPE (what ByteLevel(use_regex=True) applies).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


# The largest vocabulary a recipe may ask for: 8x the largest in common use (256k); beyond it
# the trainer would try to allocate tens of gigabytes before saying anything.
MAX_VOCAB = 1 << 21


class TokenizerError(AssayError, ValueError):
    """A tokenizer that cannot be loaded, trained or used as asked."""


def byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character standing for each byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocabulary <= 65,536), else int32.

    int32 rather than uint32 because Megatron's index has no uint32 code; for ids below 2^31
    the bytes are the same, so nanoGPT-style readers may memmap the file as uint32 too.
    """
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.int32)


@dataclass(frozen=True)
class TiktokenTables:
    """What tiktoken's engine needs to run a byte-level BPE: the split pattern, each token's
    bytes and rank (= its id), and the special tokens."""

    pattern: str
    ranks: dict[bytes, int]
    special: dict[str, int]


def tiktoken_tables(spec: dict[str, Any]) -> TiktokenTables | str:
    """Convert a ``tokenizer.json`` (parsed) to tiktoken tables, or say why it cannot be.

    Requires: a BPE model without dropout, unknown token, subword prefix/suffix or byte
    fallback; no normalizer; a byte-level pre-tokenizer (GPT-2's regex, or a Split regex
    followed by ByteLevel without its own regex); only special added tokens; every byte as
    a token; every other token made by exactly one merge, with ids increasing in merge
    order (tiktoken merges by rank = id, tokenizers by merge order: they then agree).
    """
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return f"model is {model.get('type')}, not BPE"
    for key in ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            return f"BPE option {key} is set"
    if model.get("byte_fallback"):
        return "BPE byte_fallback is set"
    if spec.get("normalizer"):
        return "the tokenizer has a normalizer"
    pattern = _byte_level_pattern(spec.get("pre_tokenizer"))
    if pattern is None:
        return "the pre-tokenizer is not byte-level BPE's (ByteLevel, or Split + ByteLevel)"
    added = spec.get("added_tokens") or []
    if any(not t.get("special") for t in added):
        return "it has non-special added tokens"
    special = {t["content"]: int(t["id"]) for t in added}
    alphabet = byte_alphabet()
    vocab: dict[str, int] = model.get("vocab") or {}
    ranks: dict[bytes, int] = {}
    for token, idx in vocab.items():
        if token in special and special[token] == idx:
            continue
        try:
            ranks[bytes(alphabet[c] for c in token)] = int(idx)
        except KeyError:
            return f"token {token!r} is not in the byte-level alphabet"
    if any(bytes([b]) not in ranks for b in range(256)):
        return "not every byte is a token"
    made = set()
    last = max(ranks[bytes([b])] for b in range(256))
    for merge in model.get("merges") or []:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        token = left + right
        idx = vocab.get(token)
        if idx is None or idx <= last:
            return f"merge {left!r} + {right!r} does not give ids in merge order"
        last = idx
        made.add(token)
    if len(made) + 256 != len(ranks):
        return "some tokens are neither bytes nor made by a merge"
    return TiktokenTables(pattern, ranks, special)


def _byte_level_pattern(pre: dict[str, Any] | None) -> str | None:
    if not pre:
        return None
    if pre.get("type") == "ByteLevel":
        ok = pre.get("use_regex", True) and not pre.get("add_prefix_space", False)
        return GPT2_PATTERN if ok else None
    if pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers") or []
        if len(parts) != 2:
            return None
        split, level = parts
        regex = (split.get("pattern") or {}).get("Regex")
        if (split.get("type") == "Split" and regex and split.get("behavior") == "Isolated"
                and not split.get("invert") and level.get("type") == "ByteLevel"
                and not level.get("use_regex", True) and not level.get("add_prefix_space", False)):
            return str(regex)
    return None


@dataclass
class Encoder:
    """A tokenizer ready to encode documents: the ``tokenizers`` object, the file it came
    from, the end-of-document token, and (when exact) tiktoken's engine for the same BPE."""

    hf: Any
    spec_bytes: bytes
    eos: str
    eos_id: int
    engine: Literal["tiktoken", "hf"]
    tables: TiktokenTables | None = None
    not_tiktoken: str | None = None  # why tiktoken's engine cannot run it
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)

    @cached_property
    def vocab_size(self) -> int:
        """One more than the largest id (so every id fits the dtype)."""
        return int(max(self.hf.get_vocab(with_added_tokens=True).values())) + 1

    @property
    def dtype(self) -> np.dtype:
        return dtype_for_vocab(self.vocab_size)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.spec_bytes).hexdigest()

    @property
    def lossless(self) -> bool:
        """Byte-level BPE without normalizer: decoding gives back the exact text."""
        return self.tables is not None

    @cached_property
    def _tiktoken(self) -> Any:
        import tiktoken

        assert self.tables is not None
        return tiktoken.Encoding(f"assay-{self.sha256[:12]}", pat_str=self.tables.pattern,
                                 mergeable_ranks=self.tables.ranks, special_tokens=self.tables.special)

    @cached_property
    def _byte_table(self) -> np.ndarray:
        assert self.tables is not None
        table = np.empty(self.vocab_size, dtype=object)
        table[:] = b""
        for token, idx in self.tables.ranks.items():
            table[idx] = token
        for token, idx in self.tables.special.items():
            table[idx] = token.encode()
        return table

    def encode(self, texts: Sequence[str],
               engine: Literal["tiktoken", "hf"] | None = None) -> list[np.ndarray]:
        """Token ids of each text (no end-of-document token), as uint32 arrays."""
        engine = engine or self.engine
        if not texts:
            return []
        if engine == "hf":
            encodings = self.hf.encode_batch_fast(list(texts), add_special_tokens=False)
            return [np.array(e.ids, dtype=np.uint32) for e in encodings]
        core = self._tiktoken._core_bpe
        # The ids as a buffer (tiktoken >= 0.8), not a list of Python ints: ~10% less time.
        # With no special token allowed, special tokens in the text are ordinary text, as in
        # encode_ordinary.
        as_buffer = getattr(core, "encode_to_tiktoken_buffer", None)

        def run(part: Sequence[str]) -> list[np.ndarray]:
            if as_buffer is not None:
                return [np.frombuffer(as_buffer(t, set()), dtype=np.uint32) for t in part]
            return [np.array(core.encode_ordinary(t), dtype=np.uint32) for t in part]

        if self.threads <= 1 or len(texts) < 2:
            return run(texts)
        # Parts of about equal text, several per thread so none waits long for the last one.
        chars = np.cumsum(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)))
        n_parts = min(len(texts), 16 * self.threads)
        cuts = np.searchsorted(chars, np.linspace(0, chars[-1], n_parts + 1)[1:-1], side="right")
        bounds = sorted({0, *cuts.tolist(), len(texts)})
        parts = self._pool.map(run, [texts[a:b] for a, b in itertools.pairwise(bounds)])
        return [arr for part in parts for arr in part]

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        """Threads that run tiktoken's encoder, which releases the GIL while it works."""
        return ThreadPoolExecutor(self.threads, thread_name_prefix="assay-encode")

    def encode_documents(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The texts' tokens, each followed by the end-of-document token, concatenated in the
        shard dtype, and each document's length (EOS included)."""
        arrays = self.encode(texts)
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays)) + 1
        flat = np.empty(int(lengths.sum()), dtype=self.dtype)
        end = 0
        for a in arrays:  # no temporary copy of all tokens: a batch's memory is its text and ids
            flat[end: end + a.size] = a
            end += a.size + 1
            flat[end - 1] = self.eos_id
        return flat, lengths

    def decode(self, ids: np.ndarray | Sequence[int]) -> str:
        """Text of ``ids``; exact for byte-level BPE (special tokens decode to their text)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.tables is not None:
            return b"".join(self._byte_table[ids].tolist()).decode("utf-8", errors="replace")
        return str(self.hf.decode(ids.tolist(), skip_special_tokens=False))

    def check_engine(self, texts: Sequence[str]) -> str | None:
        """With ``engine == 'tiktoken'``, compare its ids with ``tokenizers``' on ``texts``;
        fall back to ``tokenizers`` (and say why) at the first difference."""
        if self.engine != "tiktoken":
            return None
        fast = self.encode(texts, "tiktoken")
        ref = self.encode(texts, "hf")
        for i, (a, b) in enumerate(zip(fast, ref, strict=True)):
            if not np.array_equal(a, b):
                self.engine = "hf"
                return (f"tiktoken's engine gives different ids from tokenizers on document {i} of "
                        "the check sample; using tokenizers (slower, exact)")
        return None

    def describe(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "vocab_size": self.vocab_size, "dtype": self.dtype.name,
                "eos": self.eos, "eos_id": self.eos_id, "engine": self.engine,
                "lossless": self.lossless, "not_tiktoken": self.not_tiktoken}


def encoder_from_json(data: bytes, *, eos: str = DEFAULT_EOS, engine: Engine = "auto",
                      origin: str = "<tokenizer>") -> Encoder:
    """An :class:`Encoder` from the bytes of a ``tokenizer.json``."""
    from tokenizers import Tokenizer

    try:
        spec = orjson.loads(data)
        hf = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
        detail = (str(exc).splitlines() or ["unreadable"])[0][:200]
        raise TokenizerError(f"{origin}: not a valid tokenizer.json ({detail})") from None
    if not isinstance(spec, dict):
        raise TokenizerError(f"{origin}: not a valid tokenizer.json (not a JSON object)")
    eos_id = hf.token_to_id(eos)
    if eos_id is None:
        specials = [t.get("content") for t in spec.get("added_tokens") or []]
        raise TokenizerError(f"{origin}: end-of-document token {eos!r} is not in the vocabulary; "
                             f"special tokens: {', '.join(map(str, specials)) or 'none'} (set tokenizer.eos)")
    hf.encode_special_tokens = True  # special tokens in the text are ordinary text
    tables = tiktoken_tables(spec)
    reason = tables if isinstance(tables, str) else None
    tables = None if isinstance(tables, str) else tables
    if engine == "tiktoken" and tables is None:
        raise TokenizerError(f"{origin}: tiktoken's engine cannot run this tokenizer exactly: {reason}")
    chosen: Literal["tiktoken", "hf"] = "tiktoken" if tables is not None and engine != "hf" else "hf"
    return Encoder(hf=hf, spec_bytes=data, eos=eos, eos_id=int(eos_id), engine=chosen, tables=tables,
                   not_tiktoken=reason)


@dataclass(frozen=True)
class EncodeJob:
    """A batch of documents to encode elsewhere (a Ray task), with the tokenizer it needs."""

    spec_bytes: bytes
    eos: str
    engine: Literal["tiktoken", "hf"]  # the engine the driver chose, so both encode alike
    texts: Any  # a pyarrow string array


_ENCODERS: dict[tuple[str, str, str], Encoder] = {}


def encode_job(job: EncodeJob) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`Encoder.encode_documents` of the job's texts, in one thread (a task has one
    CPU); the encoder is built once per process."""
    key = (hashlib.sha256(job.spec_bytes).hexdigest(), job.eos, job.engine)
    encoder = _ENCODERS.get(key)
    if encoder is None:
        encoder = encoder_from_json(job.spec_bytes, eos=job.eos, engine=job.engine)
        encoder.threads = 1
        _ENCODERS.clear()
        _ENCODERS[key] = encoder
    return encoder.encode_documents(job.texts.to_pylist())


def load_encoder(path: str | Path, *, eos: str = DEFAULT_EOS, engine: Engine = "auto") -> Encoder:
    """Load a local ``tokenizer.json``; :class:`TokenizerError` if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"{path}: tokenizer file not found")
    return encoder_from_json(path.read_bytes(), eos=eos, engine=engine, origin=str(path))


def train_encoder(texts: Iterable[str], vocab_size: int, *, eos: str = DEFAULT_EOS,
                  min_frequency: int = 2, engine: Engine = "auto") -> Encoder:
    """Train a byte-level BPE (GPT-2's pre-tokenizer, no normalizer) on ``texts``.

    The vocabulary is the 256 bytes, ``eos`` (id 0) and the merges learned by ``tokenizers``'
    BPE trainer, up to ``vocab_size`` ids in all (fewer when the text has too few pairs).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 258:
        raise TokenizerError(f"vocab_size {vocab_size} is too small: 256 bytes and {eos!r} need 257 ids")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[eos],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return encoder_from_json(tok.to_str().encode(), eos=eos, engine=engine, origin="<trained>")
