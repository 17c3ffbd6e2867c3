"""The compiled text kernel (the Rust crate ``native/assay_text/``), loaded with ctypes.

``make demo`` and ``make test`` build ``libassay_text.so`` beside this file with ``rustc``
(see the Makefile); without it every caller uses the pure-Python reference modules, which
the tests compare the kernel against. ``ASSAY_PURE_PYTHON=1`` turns the kernel off.

The kernel applies spaCy's English rules (:func:`.spacy_rules.split_chunk`) itself; it
calls back into Python for spaCy's URL pattern on the strings that may be URLs, and marks
as complex the few chunks whose tokens spaCy would re-merge (an exception the affix rules
split), which :class:`.spacy_words.WordSplitter` splits with the reference rules. The
exceptions and units reach the kernel as strings sorted by FNV-1a hash and compared after a
hash match; the merge pairs as hashes alone, so a collision only marks a chunk complex.
"""

from __future__ import annotations

import ctypes
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from assay.text.spacy_rules import (
    AFTER_DIGIT,
    AFTER_DIGIT_MAX,
    ALPHA_CHARS,
    ALPHA_LOWER_CHARS,
    ALPHA_UPPER_CHARS,
    EXCEPTIONS,
    ICON_CHARS,
    MERGE_PAIRS,
    PREFIX_CHARS,
    QUOTES,
    SUFFIX_CHARS,
    dot_follows,
    url_match,
)
from assay.text.tables import PUNCTUATION_SET, SENTENCE_PUNCTUATION

LIBRARY = Path(__file__).with_name("libassay_text.so")

# Character classes (bits of the table the kernel reads; the same constants as in Rust).
(SPACE, ALNUM, ALPHA, PREFIX, SUFFIX, DOT_FOLLOWS, UPPER, PUNCT, S_ALPHA, S_LOWER, QUOTE, ICON, INFIX,
 PAIR_END, PAIR_START, FINAL, P_CATEGORY, DECIMAL, LOWER_ASCII) = (1 << i for i in range(19))  # fmt: skip

_I64 = np.ctypeslib.ndpointer(np.int64, flags="C_CONTIGUOUS")
_I32 = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
_U32 = np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS")
_U64 = np.ctypeslib.ndpointer(np.uint64, flags="C_CONTIGUOUS")
_U8 = np.ctypeslib.ndpointer(np.uint8, flags="C_CONTIGUOUS")
_N = ctypes.c_int64
_URL_MATCH = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_uint32), ctypes.c_int64)
_SENTENCES = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.POINTER(ctypes.c_uint32), ctypes.c_int64)


# The kernel's questions to the URL pattern, answered: half of them come again (a site's
# host name, a licence's address), and the pattern is a long regular expression.
_URL_ANSWERS: dict[str, bool] = {}
_MAX_URL_ANSWERS = 100_000


@_URL_MATCH
def _is_url(chars: ctypes._Pointer, n: int) -> int:  # type: ignore[type-arg]
    """spaCy's URL_MATCH on code points, for the kernel (a URL is whole, not split)."""
    text = ctypes.string_at(chars, 4 * n).decode("utf-32-le", "surrogatepass")
    answer = _URL_ANSWERS.get(text)
    if answer is None:
        if len(_URL_ANSWERS) >= _MAX_URL_ANSWERS:
            _URL_ANSWERS.clear()
        answer = _URL_ANSWERS[text] = url_match(text) is not None
    return answer


def _load() -> ctypes.CDLL | None:
    if os.environ.get("ASSAY_PURE_PYTHON") or not LIBRARY.exists():
        return None
    lib = ctypes.CDLL(str(LIBRARY))
    lib.assay_split_words.restype = _N
    lib.assay_rules_new.restype = ctypes.c_void_p
    lib.assay_rules_new.argtypes = [_U32, _N, ctypes.c_void_p, _I64, _N, _U64, _N, _URL_MATCH]
    lib.assay_split_words.argtypes = [_U32, _I64, _N, ctypes.c_void_p, _I64, _I32, _U8, _N, _I64]
    lib.assay_word_attributes.restype = None
    lib.assay_word_attributes.argtypes = [_U32, _N, ctypes.c_void_p, _I64, _I32, _N, _U8, _U8, _I32, _I32]
    lib.assay_count_sentences.restype = None
    lib.assay_count_sentences.argtypes = [_U32, _I64, _N, ctypes.c_void_p, _I64]
    lib.assay_line_marks.restype = None
    lib.assay_line_marks.argtypes = [_U32, _I64, _N, ctypes.c_void_p, _I64, _I64, _I64]
    lib.assay_c4_lines.restype = None
    lib.assay_c4_lines.argtypes = [_U32, _I64, _N, ctypes.c_void_p, _I64, _SENTENCES, _I64, _U32, _I64, _U8]
    lib.assay_line_repeats.restype = None
    lib.assay_line_repeats.argtypes = [_U32, _I64, _N, ctypes.c_void_p, _I64]
    lib.assay_repetition.restype = None
    lib.assay_repetition.argtypes = [_I32, _I32, _I32, _N, _I64, _N, _I64, _N, _I64, _N, _I64, _I64]
    return lib


_LIB = _load()


def available() -> bool:
    """Whether the compiled kernel is loaded."""
    return _LIB is not None


def fnv(text: str, seed: int = 0xCBF29CE484222325) -> int:
    """FNV-1a over the code points of ``text`` (the kernel's ``fnv``)."""
    h = seed
    for c in text:
        h = ((h ^ ord(c)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _pair_hash(a: str, b: str) -> int:
    """The kernel's ``pair_hash``: ``a``, a separator code (0xFFFFFFFF), then ``b``."""
    separated = ((fnv(a) ^ 0xFFFFFFFF) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return fnv(b, separated)


# Every code point from here on is unassigned, a tag, a variation selector or private use:
# none is a space, a letter, a digit or punctuation, and no rule names one.
CLASSIFIED = 0x32400


def class_table(size: int = CLASSIFIED) -> np.ndarray:
    """The class bits of the code points below ``size`` (the kernel reads 0 past the end)."""
    everything = "".join(map(chr, range(size)))
    table = np.zeros(size, dtype=np.uint32)
    for bit, test in ((SPACE, str.isspace), (ALNUM, str.isalnum), (ALPHA, str.isalpha),
                      (DECIMAL, str.isdecimal)):  # fmt: skip
        table[np.fromiter(map(test, everything), dtype=bool, count=size)] |= bit
    table[_lower_to_ascii(everything)] |= LOWER_ASCII
    categories = "".join(c[0] for c in map(unicodedata.category, everything))
    table[np.frombuffer(categories.encode("ascii"), dtype=np.uint8) == ord("P")] |= P_CATEGORY
    for bit, chars in (
        (PREFIX, PREFIX_CHARS), (SUFFIX, SUFFIX_CHARS), (PUNCT, PUNCTUATION_SET), (QUOTE, QUOTES),
        (ICON, ICON_CHARS), (INFIX, ".…,-–—~:<>=/+*^"),
        (PAIR_END, {a[-1] for a, _ in MERGE_PAIRS}), (PAIR_START, {b[0] for _, b in MERGE_PAIRS}),
        (FINAL, SENTENCE_PUNCTUATION),
    ):  # fmt: skip
        table[[ord(c) for c in chars if len(c) == 1 and ord(c) < size]] |= bit
    for bit, pattern in (
        (DOT_FOLLOWS, dot_follows.__self__), (UPPER, re.compile(f"[{ALPHA_UPPER_CHARS}]")),
        (S_ALPHA, re.compile(f"[{ALPHA_CHARS}]")), (S_LOWER, re.compile(f"[{ALPHA_LOWER_CHARS}]")),
    ):  # fmt: skip
        table[_matches(pattern, everything)] |= bit
    return table


def _lower_to_ascii(everything: str) -> np.ndarray:
    """Which characters of ``everything`` (code points from 0) are not ASCII but lower-case
    to a string with an ASCII character (U+0130 to "i" and a combining dot, the Kelvin sign
    to "k"). One ``str.lower`` of the whole string: only U+0130 lower-cases to two
    characters; should another Unicode release add one, every non-ASCII character is
    marked (the C4 rules then leave any such text to the reference)."""
    lowered = everything.lower()
    found = np.zeros(len(everything), dtype=bool)
    if len(lowered) != len(everything) + 1 or lowered[0x130:0x132] != "i\u0307":
        found[128:] = True
        return found
    aligned = lowered[:0x130] + "i" + lowered[0x132:]
    found[:] = np.frombuffer(aligned.encode("utf-32-le", "surrogatepass"), dtype=np.uint32) < 128
    found[:128] = False
    return found


def _matches(pattern: re.Pattern[str], everything: str) -> np.ndarray:
    """Whether ``pattern`` (one character long) matches each character of ``everything``
    (which starts at code point 0 and has no NUL after it): the matches replaced by NUL in
    C, then found with numpy (8x faster than listing the matches)."""
    marked = pattern.sub("\0", everything).encode("utf-32-le", "surrogatepass")
    found = np.frombuffer(marked, dtype=np.uint32) == 0
    found[0] = pattern.match(everything[0]) is not None
    return found


class _StringSet:
    """Strings for the kernel's exact look-up (``StringSet`` in Rust): sorted FNV-1a
    hashes, then per entry (offset, length, token offset, tokens), the code points end to
    end and the token lengths."""

    def __init__(self, strings: dict[str, tuple[str, ...]]) -> None:
        entries = sorted((fnv(s), s, tokens) for s, tokens in strings.items())
        assert len({h for h, _, _ in entries}) == len(entries), "FNV-1a collision in a rule table"
        self.hashes = np.array([h for h, _, _ in entries], dtype=np.uint64)
        info, chars, tokens = [], [], []
        for _, s, toks in entries:
            info += [len(chars), len(s), len(tokens), len(toks)]
            chars += map(ord, s)
            tokens += map(len, toks)
        self.info = np.array(info, dtype=np.int64)
        self.chars = np.array(chars, dtype=np.uint32)
        self.tokens = np.array(tokens or [0], dtype=np.int64)

    def arrays(self) -> list[np.ndarray]:
        return [self.hashes, self.info, self.chars, self.tokens]


class _Rules:
    """The tables the kernel reads, built once per process on first use."""

    def __init__(self) -> None:
        self.classes = class_table()
        arrays = _StringSet(EXCEPTIONS).arrays() + _StringSet(dict.fromkeys(AFTER_DIGIT, ())).arrays()
        self._keep = arrays  # the kernel reads them through the pointers below
        self.sets = (ctypes.c_void_p * 8)(*(a.ctypes.data for a in arrays))
        self.set_sizes = np.array([len(a) for a in arrays], dtype=np.int64)
        self.pairs = np.unique(np.array([_pair_hash(a, b) for a, b in MERGE_PAIRS], dtype=np.uint64))
        assert _LIB is not None
        # The kernel's handle points into the arrays above, which this object keeps alive
        # (one per process, never freed).
        self.handle = _LIB.assay_rules_new(
            self.classes, len(self.classes), self.sets, self.set_sizes, AFTER_DIGIT_MAX,
            self.pairs, len(self.pairs), _is_url,
        )  # fmt: skip


_rules: _Rules | None = None


def rules() -> _Rules:
    global _rules
    if _rules is None:
        _rules = _Rules()
    return _rules


def split(cp: np.ndarray, doc_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Words of the documents ``cp[doc_starts[d]:doc_starts[d + 1]]`` (code points):
    ``(starts, lengths, complex, entries per document)``, where a complex entry is a whole
    chunk for the reference rules to split."""
    assert _LIB is not None
    r = rules()
    entries = np.empty(len(doc_starts) - 1, dtype=np.int64)
    # Room for one word per 3 code points (natural text has about one per 6); a text that
    # needs more is split again with room for one per code point, which always suffices.
    for cap in (len(cp) // 3 + 16, len(cp) + 16):
        starts = np.empty(cap, dtype=np.int64)
        lengths = np.empty(cap, dtype=np.int32)
        complex_ = np.empty(cap, dtype=np.uint8)
        n = _LIB.assay_split_words(
            cp, doc_starts, len(doc_starts) - 1, r.handle, starts, lengths, complex_, cap, entries
        )
        if n >= 0:
            return starts[:n], lengths[:n], complex_[:n].view(bool), entries
    raise AssertionError("unreachable: one word per code point always fits")


def word_attributes(
    cp: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(symbol, alpha, h, hs)`` of each word (see ``spacy_words.WordTable``)."""
    assert _LIB is not None
    r = rules()
    n = len(starts)
    symbol = np.empty(n, dtype=np.uint8)
    alpha = np.empty(n, dtype=np.uint8)
    h = np.empty((2, n), dtype=np.int32)
    hs = np.empty((2, n), dtype=np.int32)
    _LIB.assay_word_attributes(
        cp, len(cp), r.handle, np.ascontiguousarray(starts, dtype=np.int64),
        np.ascontiguousarray(lengths, dtype=np.int32), n, symbol, alpha, h, hs,
    )  # fmt: skip
    return symbol, alpha, h, hs


def repetition(
    lengths: np.ndarray, h: np.ndarray, hs: np.ndarray, doc_starts: np.ndarray,
    top: tuple[int, ...], dup: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Gopher's top and duplicate n-gram characters per document (rows: each n of ``top``,
    then of ``dup``), as ``gopher_repetition.top_ngram_chars`` and
    ``duplicate_ngram_chars`` compute them."""
    assert _LIB is not None
    n_docs = len(doc_starts) - 1
    out_top = np.zeros((len(top), n_docs), dtype=np.int64)
    out_dup = np.zeros((len(dup), n_docs), dtype=np.int64)
    _LIB.assay_repetition(
        np.ascontiguousarray(lengths, dtype=np.int32), np.ascontiguousarray(h, dtype=np.int32),
        np.ascontiguousarray(hs, dtype=np.int32), len(lengths),
        np.ascontiguousarray(doc_starts, dtype=np.int64), n_docs,
        np.array(top, dtype=np.int64), len(top), np.array(dup, dtype=np.int64), len(dup),
        out_top, out_dup,
    )  # fmt: skip
    return out_top, out_dup


def code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The texts' code points end to end, and where each text starts (and the total)."""
    cp = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=starts[1:])
    return cp, starts


def line_marks(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per text: lines (``str.splitlines``), lines starting with a bullet (``•`` or ``-``
    after whitespace) and lines ending with an ellipsis (``...`` or ``…`` before
    whitespace), as ``gopher_quality`` counts them."""
    assert _LIB is not None
    cp, starts = code_points(texts)
    out = np.zeros((3, len(texts)), dtype=np.int64)
    _LIB.assay_line_marks(cp, starts, len(texts), rules().handle, out[0], out[1], out[2])
    return out[0], out[1], out[2]


def line_repeats(cp: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per text of :func:`code_points` ``(cp, starts)`` (columns): paragraphs, repeated
    paragraphs, their characters, lines, repeated lines, their characters (rows), as
    ``GopherRepetition._line_fractions`` counts them."""
    assert _LIB is not None
    n_texts = len(starts) - 1
    out = np.zeros((6, n_texts), dtype=np.int64)
    _LIB.assay_line_repeats(cp, starts, n_texts, rules().handle, out)
    return out


def c4_lines(
    texts: Sequence[str], settings: tuple[int, int, int, int, int, int],
    count_sentences: Callable[[str], int],
) -> tuple[np.ndarray, list[str | None]]:  # fmt: skip
    """C4's line cleaning of each text (``C4Quality._clean``): its counts (11 rows, the
    step's ``_COUNTS``; columns: texts) and cleaned text, None (and its counts unset) for a
    text the kernel leaves to the reference. ``settings``: max word length (-2**63: none),
    remove citations, terminal punctuation rule, min words per line (0: none), javascript
    rule, policy rule (as 0 or 1). ``count_sentences`` counts the sentences of a line that
    has a chunk the kernel leaves to the reference rules."""
    assert _LIB is not None

    @_SENTENCES
    def reference(chars: ctypes._Pointer, n: int) -> int:  # type: ignore[type-arg]
        return count_sentences(ctypes.string_at(chars, 4 * n).decode("utf-32-le", "surrogatepass"))

    cp, starts = code_points(texts)
    counts = np.zeros((11, len(texts)), dtype=np.int64)
    out = np.empty(len(cp), dtype=np.uint32)
    lengths = np.zeros(len(texts), dtype=np.int64)
    todo = np.zeros(len(texts), dtype=np.uint8)
    _LIB.assay_c4_lines(cp, starts, len(texts), rules().handle, np.array(settings, dtype=np.int64),
                        reference, counts, out, lengths, todo)  # fmt: skip
    # The cleaned texts lie end to end: one decode, then one slice each.
    ends = np.cumsum(lengths).tolist()
    joined = out[: ends[-1] if ends else 0].tobytes().decode("utf-32-le", "surrogatepass")
    cleaned: list[str | None] = []
    for t, (end, length) in enumerate(zip(ends, lengths.tolist(), strict=True)):
        cleaned.append(None if todo[t] else joined[end - length : end])
    return counts, cleaned


def count_sentences(texts: list[str]) -> np.ndarray:
    """``WordSplitter.count_sentences`` of each text, or -1 where a chunk needs the
    reference rules."""
    assert _LIB is not None
    r = rules()
    cp, starts = code_points(texts)
    out = np.empty(len(texts), dtype=np.int64)
    _LIB.assay_count_sentences(cp, starts, len(texts), r.handle, out)
    return out
