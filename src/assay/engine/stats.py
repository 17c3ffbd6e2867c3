"""Per-task and per-run counts, and the accounting invariant.

Every task reports what came in, what each step kept and rejected (with reasons), and
what went to quarantine. The run totals are sums of task reports, so a resumed run
(which reads the reports of finished tasks back from disk) adds up the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from assay.engine.changes import merge_changes
from assay.errors import EXIT_ACCOUNTING, AssayError


class AccountingError(AssayError, RuntimeError):
    """Documents in != kept + rejected + quarantined somewhere: a bug, never ignored."""

    exit_code = EXIT_ACCOUNTING


@dataclass
class StepStats:
    """What one step did to the documents that reached it."""

    name: str
    kind: str
    docs_in: int = 0
    docs_kept: int = 0
    docs_rejected: int = 0
    bytes_in: int = 0
    bytes_kept: int = 0
    bytes_rejected: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    generated: int = 0  # new documents the step wrote to generated/
    counters: dict[str, Any] = field(default_factory=dict)  # the step's own (StepExtras)
    changed: int = 0  # kept documents whose text the step rewrote
    changes: list[dict[str, Any]] = field(default_factory=list)  # a sample of them (engine/changes.py)

    def add(self, other: StepStats) -> None:
        self.docs_in += other.docs_in
        self.docs_kept += other.docs_kept
        self.docs_rejected += other.docs_rejected
        self.bytes_in += other.bytes_in
        self.bytes_kept += other.bytes_kept
        self.bytes_rejected += other.bytes_rejected
        self.seconds += other.seconds
        self.reasons.update(other.reasons)
        self.generated += other.generated
        add_counters(self.counters, other.counters)
        self.changed += other.changed
        self.changes = merge_changes(self.changes, other.changes)

    def to_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.generated:
            extra["generated"] = self.generated
        if self.counters:
            extra["counters"] = self.counters
        if self.changed:
            extra["changed"] = self.changed
            extra["changes"] = self.changes
        return {
            "name": self.name,
            "kind": self.kind,
            "docs_in": self.docs_in,
            "docs_kept": self.docs_kept,
            "docs_rejected": self.docs_rejected,
            "bytes_in": self.bytes_in,
            "bytes_kept": self.bytes_kept,
            "bytes_rejected": self.bytes_rejected,
            "seconds": round(self.seconds, 3),
            "reasons": dict(self.reasons.most_common()),
            **extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepStats:
        fields = {k: v for k, v in data.items() if k not in ("reasons", "counters")}
        return cls(**fields, reasons=Counter(data.get("reasons", {})),
                   counters=add_counters({}, data.get("counters", {})))


def add_counters(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Add ``more`` to ``into`` key by key: numbers add, ``{key: count}`` maps add per key."""
    for name, value in more.items():
        if isinstance(value, dict):
            merged = into.setdefault(name, {})
            for key, count in value.items():
                merged[key] = merged.get(key, 0) + count
        else:
            into[name] = into.get(name, 0) + value
    return into


@dataclass
class ReadStats:
    """What the reader saw: records, documents decoded, records quarantined, bytes."""

    records: int = 0
    docs: int = 0
    quarantined: int = 0
    bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, other: ReadStats) -> None:
        self.records += other.records
        self.docs += other.docs
        self.quarantined += other.quarantined
        self.bytes += other.bytes
        self.errors.update(other.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "docs": self.docs,
            "quarantined": self.quarantined,
            "bytes": self.bytes,
            "errors": dict(self.errors.most_common()),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReadStats:
        fields = {k: v for k, v in data.items() if k != "errors"}
        return cls(**fields, errors=Counter(data.get("errors", {})))


def check_accounting(
    read: ReadStats, steps: list[StepStats], kept: int, rejected: int, quarantined: int,
    generated: int = 0,
) -> list[str]:
    """Every violated invariant, as a sentence; an empty list means the books balance.

    ``kept``, ``rejected`` and ``quarantined`` are counted from the files written, so the
    check compares what the steps claim with what is on disk.
    """
    problems: list[str] = []
    if read.records != read.docs + read.quarantined:
        problems.append(
            f"reader: {read.records} records != {read.docs} documents + {read.quarantined} quarantined"
        )
    flowing = read.docs
    for s in steps:
        if s.docs_in != flowing:
            problems.append(f"step {s.name}: received {s.docs_in} documents, expected {flowing}")
        if s.docs_in != s.docs_kept + s.docs_rejected:
            problems.append(
                f"step {s.name}: in {s.docs_in} != kept {s.docs_kept} + rejected {s.docs_rejected}"
            )
        flowing = s.docs_kept
    if flowing != kept:
        problems.append(f"last step kept {flowing} documents but the output holds {kept}")
    claimed_rejected = sum(s.docs_rejected for s in steps)
    if claimed_rejected != rejected:
        problems.append(f"steps rejected {claimed_rejected} documents but rejected/ holds {rejected}")
    claimed_generated = sum(s.generated for s in steps)
    if claimed_generated != generated:
        problems.append(f"steps generated {claimed_generated} documents but generated/ holds {generated}")
    if read.quarantined != quarantined:
        problems.append(f"reader quarantined {read.quarantined} records but quarantine/ holds {quarantined}")
    if read.records != kept + rejected + quarantined:
        problems.append(
            f"total: in {read.records} != kept {kept} + rejected {rejected} + quarantined {quarantined}"
        )
    return problems
