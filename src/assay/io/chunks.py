"""What the driver cuts input files into and workers decode: raw chunks of records, the
web records inside them, the field mapping, and the quarantine records of what cannot be a
document."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from assay.documents import ID, SOURCE, TEXT, URL
from assay.io.files import InputFile


@dataclass(frozen=True)
class FieldMap:
    """Which input fields hold the core columns."""

    text: str = TEXT
    id: str = ID
    url: str = URL
    source: str = SOURCE
    default_source: str | None = None  # used when a record has no source field
    prefix_source: bool = False  # ids become SOURCE/ID (input.id_policy: prefix_source)


@dataclass
class QuarantineRecord:
    file: str
    line: int | None
    offset: int | None
    error: str
    raw: bytes | None


@dataclass
class RawChunk:
    """A slice of one input file, cut by the driver and decoded by a worker."""

    file_index: int
    chunk_index: int
    file: InputFile
    first_line: int  # 1-based line (JSONL) or row (Parquet) of the first record
    first_offset: int  # byte offset of the first record in the decoded stream
    lines: list[bytes] | None = None  # JSONL records
    rows: pa.Table | None = None  # Parquet records
    # Errors found while cutting the chunk (a truncated stream), already located.
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    records: list[WebRecord] | None = None  # WARC/WET records or HTML files

    @property
    def shard_id(self) -> str:
        return f"{self.file_index:05d}-{self.chunk_index:05d}"

    @property
    def n_records(self) -> int:
        if self.lines is not None:
            return len(self.lines)
        if self.records is not None:
            return len(self.records)
        return self.rows.num_rows if self.rows is not None else 0


@dataclass
class WebRecord:
    """One WARC record or HTML file as cut by the driver, before decoding."""

    file: str  # URL of the file it came from
    offset: int  # byte offset of the record in the (compressed) file
    kind: str  # "response" | "conversion" | "file"
    record_id: str | None
    target_uri: str | None
    date: str | None
    block: bytes  # record block (HTTP head + payload for responses) or file content
    truncated: bool = False
    error: str | None = None  # set when the file broke here: the record is quarantined
