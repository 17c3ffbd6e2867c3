"""The contamination report the decontaminate step writes to
``OUTPUT/reports/decontaminate/``: per benchmark item, per document, and the frequent
n-grams that were ignored."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from assay.steps.decontaminate.benchmarks import BenchmarkIndex
from assay.steps.decontaminate.cut import Cut

REPORT_FOLDER = "reports/decontaminate"


@dataclass(frozen=True)
class Decision:
    """A colliding document: its id, cut, rejection reason (None: cut), characters removed
    and the benchmark n-gram hashes that count."""

    id: str
    cut: Cut
    reason: str | None
    chars_removed: int
    hashes: np.ndarray



class Report:
    """The contamination report: per item, per document and the ignored n-grams."""

    def __init__(self, index: BenchmarkIndex) -> None:
        self.index = index
        self.item_docs: dict[int, dict[str, None]] = defaultdict(dict)
        self.item_ngrams: dict[int, dict[str, None]] = defaultdict(dict)

    def _items_of(self, hashes: np.ndarray) -> list[tuple[int, int]]:
        """(item, entry) pairs for the hashes: every item holding one, one entry each."""
        index = self.index
        lo, hi = index.entries(hashes)
        out = []
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
            seen = set()
            for entry in range(a, b):
                item = int(index.text_item[index.text[entry]])
                if item not in seen:
                    seen.add(item)
                    out.append((item, entry))
        # In reading order: by item, then where the n-gram is in it.
        return sorted(out, key=lambda p: (p[0], int(index.text[p[1]]), int(index.start[p[1]])))

    def _item_ref(self, item: int) -> dict[str, Any]:
        benchmark = self.index.benchmarks[int(self.index.item_benchmark[item])]
        return {"benchmark": benchmark.name, "item": self.index.items[item].id}

    def write(self, folder: str, documents: Sequence[Decision], frequent: np.ndarray,
              frequent_docs: np.ndarray) -> str:
        """Write the three report files into the local ``folder``; return it."""
        doc_lines = []
        for doc in documents:
            pairs = self._items_of(doc.hashes)
            ngrams = list(dict.fromkeys(self.index.ngram_text(entry) for _, entry in pairs))
            for item, entry in pairs:
                self.item_docs[item][doc.id] = None
                self.item_ngrams[item][self.index.ngram_text(entry)] = None
            doc_lines.append({
                "id": doc.id, "action": "rejected" if doc.reason else "cut", "reason": doc.reason,
                "collisions": len(doc.hashes), "occurrences": doc.cut.occurrences,
                "pieces": doc.cut.pieces, "pieces_kept": 0 if doc.reason else len(doc.cut.kept),
                "chars_removed": doc.chars_removed,
                "items": [self._item_ref(i) for i in sorted({i for i, _ in pairs})],
                "ngrams": ngrams,
            })
        item_lines = [
            {**self._item_ref(item), "line": self.index.items[item].line,
             "documents": list(self.item_docs[item]), "ngrams": list(self.item_ngrams[item])}
            for item in sorted(self.item_docs)
        ]
        frequent_lines = [
            {"ngram": self.index.ngram_text(entry), "documents": int(docs), **self._item_ref(item)}
            for h, docs in zip(frequent, frequent_docs.tolist(), strict=True)
            for item, entry in self._items_of(np.array([h], dtype=np.uint64))
        ]
        os.makedirs(folder, exist_ok=True)
        for name, lines in (("items.jsonl", item_lines), ("documents.jsonl", doc_lines),
                            ("frequent_ngrams.jsonl", frequent_lines)):
            with open(os.path.join(folder, name), "wb") as out:
                out.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        return folder

    def benchmark_summary(self) -> dict[str, dict[str, int]]:
        contaminated = np.zeros(len(self.index.benchmarks), dtype=np.int64)
        for item in self.item_docs:
            contaminated[int(self.index.item_benchmark[item])] += 1
        return {
            benchmark.name: {**stats, "items_contaminated": int(contaminated[b])}
            for b, (benchmark, stats) in enumerate(zip(self.index.benchmarks, self.index.stats,
                                                       strict=True))
        }
