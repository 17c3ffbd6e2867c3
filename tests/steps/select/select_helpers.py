"""Helpers for the selector tests: corpora with a known answer, documents in made-up
"languages" (each a distinct vocabulary with its own word order), so a selector can be
checked against the truth."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

LANGUAGES = {
    "ka": [f"{c}{v}" for c in "bdgklmnprstvz" for v in ("a", "o", "ka", "ko")],
    "mi": [f"{c}{v}" for c in "bdgklmnprstvz" for v in ("i", "u", "mi", "mu")],
    "zo": [f"{c}{v}{c}" for c in "bdgklmnprstvz" for v in ("e", "ze", "zo")],
}


def sentence(rng: random.Random, language: str, n_words: int) -> str:
    """A document: words of one vocabulary, in a skewed (Zipf-like) order per language."""
    vocab = LANGUAGES[language]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    words = rng.choices(vocab, weights=weights, k=n_words)
    for i in range(9, n_words, 10):
        words[i] += rng.choice([".", ",", "!"])
    return " ".join(words)


def make_docs(
    seed: int, mix: dict[str, int], prefix: str, n_words: tuple[int, int] = (120, 220)
) -> list[dict]:
    rng = random.Random(seed)
    docs = [{"id": f"{prefix}{lang}{i:04d}", "text": sentence(rng, lang, rng.randint(*n_words)), "lang": lang}
            for lang, n in mix.items() for i in range(n)]
    rng.shuffle(docs)
    return docs


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_folder(folder: Path) -> pa.Table:
    files = sorted(folder.glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def lang_of(doc_id: str) -> str:
    return doc_id[1:3]
