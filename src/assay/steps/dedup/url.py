"""URL deduplication: the first document of each group with the same (normalised) URL."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import xxhash
from pydantic import Field

from assay.documents import URL
from assay.steps.base import StepParams, register
from assay.steps.dedup.exact import ExactDedup

DUPLICATE_URL = "duplicate_url"


def normalize_url(url: str) -> str:
    """Scheme and host lower-cased, a leading ``www.`` and default ports dropped, the
    fragment dropped, an empty path written as ``/`` and a trailing ``/`` removed from
    other paths; query strings are kept (they often select different content)."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").removeprefix("www.")
    port = parts.port if parts.port not in (None, 80, 443) else None
    netloc = f"{host}:{port}" if port else host
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))


class UrlDedupParams(StepParams):
    normalize: bool = Field(default=True, description="compare normalised URLs (see normalize_url)")


@register
class UrlDedup(ExactDedup):
    """URL deduplication: keep the first document of each group with the same URL.

    Crawls fetch the same page more than once (Common Crawl snapshots overlap, and a
    page is reachable under several spellings of its URL); RefinedWeb (Penedo et al.
    2023) and FineWeb (Penedo et al. 2024) deduplicate by URL across dumps, and datatrove
    ships ``UrlDedupFilter``. Key: the xxh3-64 hash of the URL, normalised by
    :func:`normalize_url` unless ``normalize: false``. Documents without a URL are never
    duplicates. The first document in input order survives; later ones are rejected as
    ``duplicate_url`` with ``duplicate_of`` naming it.
    """

    name: ClassVar[str] = "url_dedup"
    reason: ClassVar[str] = DUPLICATE_URL
    Params: ClassVar[type[StepParams]] = UrlDedupParams

    def __call__(self, table: pa.Table) -> pa.Table:
        urls = table.column(URL).to_pylist() if URL in table.column_names else [None] * table.num_rows
        prepare = normalize_url if self.params.normalize else str
        hashes = [None if not u else xxhash.xxh3_64_intdigest(prepare(u).encode("utf-8")) for u in urls]
        return table.append_column(self.key_column, pa.array(hashes, pa.uint64()))
