"""The request cache: every answered request of a run, in SQLite in the output folder.

A request's key is a hash of what decides its answer (model, messages, sampling parameters,
the document's id and the sample's index), so a resumed or repeated run finds every answer
it already paid for and sends nothing again; byte-identical resume comes from here, not
from the server. Failed requests are not cached: a later run asks again. The same database
keeps each run's spending (requests sent and their cost, by the run's id), so the caps hold
across every worker process of the machine and across a resume, while a new run into the
same output (``--overwrite`` keeps the cache) starts a new budget and reuses every answer.
SQLite needs a file system with working locks: a local disk, not a network mount.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from assay.errors import AssayError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, text TEXT NOT NULL,
                                    tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS spending (run TEXT PRIMARY KEY, requests INTEGER NOT NULL,
                                     cost REAL NOT NULL);
"""


def request_key(model: str, messages: list[dict[str, str]], params: dict[str, Any], doc_id: str,
                sample: int = 0) -> str:
    """SHA-256 of everything that decides an answer, in a canonical JSON form."""
    payload = orjson.dumps([model, messages, params, doc_id, sample], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


class CacheError(AssayError):
    """The request cache's file is not one assay wrote."""


@dataclass(frozen=True)
class Cached:
    text: str
    tokens_in: int
    tokens_out: int


class RequestCache:
    """Answers by request key, and the spending of the run ``run``, in one SQLite file."""

    def __init__(self, path: str | Path, run: str = "") -> None:
        self.path = Path(path)
        self.run = run
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._refuse_a_foreign_file()
        self._db.execute("PRAGMA journal_mode=WAL")
        # A commit reaches the WAL file without an fsync: a killed process loses nothing, a
        # power cut may lose the last answers (asked again by the next run).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO spending VALUES (?, 0, 0.0)", (run,))

    def _refuse_a_foreign_file(self) -> None:
        """A file at ``llm.cache`` that is not a request cache (another program's database,
        or not a database) is never written to."""
        try:
            listed = self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = {name for (name,) in listed}
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CacheError(f"not a request cache ({exc}); give llm.cache a new file",
                             file=str(self.path)) from None
        if tables and "answers" not in tables:
            self._db.close()
            raise CacheError("a database assay did not write; give llm.cache a new file",
                             file=str(self.path))

    def get_many(self, keys: Iterable[str]) -> dict[str, Cached]:
        keys = list(keys)
        found: dict[str, Cached] = {}
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            part = keys[start:start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT key, text, tokens_in, tokens_out FROM answers WHERE key IN ({marks})", part)
            found.update({k: Cached(t, i, o) for k, t, i, o in rows})
        return found

    def put(self, key: str, answer: Cached) -> None:
        self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                         (key, answer.text, answer.tokens_in, answer.tokens_out))

    def reserve(self, max_requests: int | None, max_cost: float | None) -> bool:
        """Count one more request against the caps, atomically; False if a cap is reached."""
        with self._transaction():
            requests, cost = self.spending()
            if (max_requests is not None and requests >= max_requests) or (
                    max_cost is not None and cost >= max_cost):
                return False
            self._db.execute("UPDATE spending SET requests = requests + 1 WHERE run = ?", (self.run,))
            return True

    def spend(self, cost: float) -> None:
        self._db.execute("UPDATE spending SET cost = cost + ? WHERE run = ?", (cost, self.run))

    def spending(self) -> tuple[int, float]:
        """Requests reserved and money spent by this run so far."""
        requests, cost = self._db.execute(
            "SELECT requests, cost FROM spending WHERE run = ?", (self.run,)).fetchone()
        return int(requests), float(cost)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """An immediate (write-locked) transaction: no other process reads between our
        read and our write."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
