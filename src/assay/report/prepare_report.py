"""The HTML report of an ``assay prepare`` output: what the shards hold and how they were drawn.

Built from ``manifest.json``, the ``tokens`` column of each phase's documents file (streamed
batch by batch into a histogram) and a few documents decoded from the token files (memory
maps, cut to their first characters): nothing reads all shards at once. Sections: the
header (recipe and tokenizer hashes, versions, seed, the books badge), tokens per source with
epochs and effective data (Muennighoff et al. 2023), tokens per phase and source against
their targets, the held-out split, document lengths and the Dataset Decomposition buckets,
warnings, a seeded sample of decoded documents and timings.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq

from assay.prepare.inspection import draw_documents
from assay.prepare.reader import Shards
from assay.prepare.recipe import MixtureSpec
from assay.prepare.shards import FormatError
from assay.report import html as h

SAMPLE_CHARS = 800
SAMPLES = 3
LOG2_BINS = 48  # document lengths up to 2^48 tokens


def header(m: dict[str, Any]) -> str:
    digest = hashlib.sha256(orjson.dumps(m["recipe"], option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    tok = m["tokenizer"]
    totals = m["totals"]
    by_source = {s: sum(p["sources"].get(s, {}).get("tokens", 0) for p in m["phases"]) for s in m["sources"]}
    balanced = sum(p["tokens"] for p in m["phases"]) == totals["tokens"] and all(
        by_source[s] == info["tokens"] for s, info in m["sources"].items()
    )
    badge = (
        f'<span class="badge {"ok" if balanced else "bad"}">'
        + (
            f"the books balance: {totals['tokens']:,} tokens = the phases' sum = the sources' sum"
            if balanced
            else "the books do not balance: the phases' or the sources' tokens differ from the total"
        )
        + "</span>"
    )
    tokenizer = (
        f"tokenizer {h.text(tok['sha256'][:12])} · vocabulary {tok['vocab_size']:,} "
        f"({h.text(tok['dtype'])}) · "
        f"EOS {h.text(tok['eos'])} = {h.text(tok['eos_id'])} · engine {h.text(tok['engine'])} · "
        f"{h.text(tok.get('origin', ''))}"
    )
    return (
        f"<h1>{h.text(m['name'])}</h1>"
        f'<p class="muted">recipe {digest} · assay {h.text(m["assay_version"])} · seed {h.text(m["seed"])} · '
        f"{h.text(m['created'])} · format {h.text(m['format'])} {h.text(m['format_version'])}</p>"
        f'<p class="muted">{tokenizer}</p>'
        f"<p>{totals['tokens']:,} tokens, {totals['documents']:,} documents, "
        f"{totals['unique_tokens']:,} unique tokens in the sources</p><p>{badge}</p>"
    )


def sources(m: dict[str, Any]) -> str:
    rows: list[tuple[object, ...]] = []
    for name, s in m["sources"].items():
        rows.append(
            (
                name,
                f"{s['documents']:,}",
                f"{s['bytes']:,}",
                f"{s['unique_tokens']:,}",
                f"{s['requested_tokens']:,.0f}",
                f"{s['tokens']:,}",
                f"{s['epochs']:.3f}",
                f"{s['max_epochs']:g}",
                f"{s['effective_tokens']:,.0f}",
                f"{s['effective_fraction']:.1%}",
                f"{s['repeated_token_value']:.3f}",
            )
        )
        for curated, c in s.get("by_curated_source", {}).items():
            rows.append(
                (
                    f"↳ {curated}",
                    f"{c['documents']:,}",
                    "",
                    f"{c['unique_tokens']:,}",
                    "",
                    f"{c['tokens']:,}",
                    "",
                    "",
                    "",
                    "",
                    "",
                )
            )
    return (
        "<h2>Sources</h2>"
        + h.table(
            [
                "source",
                "documents",
                "bytes",
                "unique tokens U",
                "requested",
                "tokens D",
                "epochs",
                "max epochs",
                "effective D'",
                "D'/D",
                "value of a repeat",
            ],
            rows,
            attrs=' id="sources"',
        )
        + '<p class="muted">epochs = D / U; effective data D\' = U + U R* (1 - exp(-R/R*)), R = epochs - 1, '
        "R* = 15.4; value of a repeat: what the last repeated token is worth against a fresh one "
        "(Muennighoff et al. 2023)</p>"
    )


def phases(m: dict[str, Any], tolerance: float) -> str:
    parts = ["<h2>Phases</h2>"]
    missed = 0
    for p in m["phases"]:
        rows = []
        for name, s in p["sources"].items():
            missed += bool(s["requested_tokens"]) and abs(s["miss"]) > tolerance
            rows.append(
                (
                    name,
                    f"{s['requested_tokens']:,.0f}",
                    f"{s['tokens']:,}",
                    f"{s['share']:.2%}",
                    f"{s['requested_share']:.2%}",
                    f"{s['miss']:+.3%}",
                    f"{s['documents']:,}",
                )
            )
        parts.append(
            f"<h3>{h.text(p['name'])}: {p['fraction']:.0%} of the run, {p['tokens']:,} tokens, "
            f"{p['documents']:,} documents</h3>"
        )
        parts.append(
            h.table(
                ["source", "requested", "tokens", "share", "requested share", "miss", "documents"],
                rows,
                attrs=' class="phase"',
            )
        )
        parts.append(packing(p))
    targets = sum(1 for p in m["phases"] for s in p["sources"].values() if s["requested_tokens"])
    parts.append(
        f'<p class="muted">{missed} of {targets} targets missed by more than the tolerance '
        f"({tolerance:.2%}): a source whose documents are few or long cannot meet a target "
        "exactly</p>"
    )
    return "".join(parts)


def packing(p: dict[str, Any]) -> str:
    out = []
    if "concat" in p:
        c = p["concat"]
        out.append(
            f'<p class="muted">concat: {len(c["files"])} file(s), {c["windows"]:,} windows of '
            f"{c['context']:,}+1 tokens</p>"
        )
    if "decompose" in p:
        rows = [
            (
                "rest (< 2^min)" if key == "rest" else f"2^{key} = {1 << int(key):,}",
                f"{b['pieces']:,}",
                f"{b['tokens']:,}",
            )
            for key, b in sorted(p["decompose"]["buckets"].items(),
                                 key=lambda kv: (kv[0] == "rest", int(kv[0]) if kv[0] != "rest" else 0))
        ]
        out.append(h.table(["Dataset Decomposition bucket", "pieces", "tokens"], rows))
    return "".join(out)


def heldout(m: dict[str, Any]) -> str:
    if "heldout" not in m:
        return ""
    held = m["heldout"]
    rows = [
        (name, f"{s['documents']:,}", f"{s['bytes']:,}", f"{s['tokens']:,}")
        for name, s in held["sources"].items()
    ]
    return (
        f"<h2>Held-out split</h2><p>{held['tokens']:,} tokens, {held['documents']:,} documents "
        f"({held['fraction']:.1%} of each source's documents), never trained on</p>"
        + h.table(["source", "documents", "bytes", "tokens"], rows, attrs=' id="heldout"')
    )


def lengths(counts: np.ndarray, total: int, n: int, longest: int) -> str:
    """Histogram of document lengths in tokens: ``counts[k]`` documents of 2^k..2^(k+1)-1."""
    if not n:
        return ""
    used = np.flatnonzero(counts)
    lo, hi = int(used[0]), int(used[-1]) + 1
    edges = [float(1 << k) for k in range(lo, hi + 1)]
    steps_x = [e for e in edges for _ in (0, 1)][1:-1]
    steps_y = [float(c) for c in counts[lo:hi] for _ in (0, 1)]
    centres = [float(np.sqrt(a * b)) for a, b in itertools.pairwise(edges)]
    chart = h.chart_svg(
        [
            h.Series(steps_x, [0.0] * len(steps_y), "band", h.PALETTE[2], high=steps_y),
            h.Series(steps_x, steps_y, "line", h.PALETTE[2]),
            h.Series(centres, [float(c) for c in counts[lo:hi]], "points", h.PALETTE[2], "documents"),
        ],
        log_x=True,
        x_label="document length in tokens (end-of-document token included)",
        y_label="documents",
    )
    return (
        "<h2>Document lengths</h2><figure>"
        f"<figcaption>{n:,} documents over all phases, bins of powers of two</figcaption>{chart}"
        f'<div class="muted">mean {total / n:,.1f} tokens · longest {longest:,}</div></figure>'
    )


def warnings(m: dict[str, Any]) -> str:
    items = "".join(f"<li>{h.text(w)}</li>" for w in m.get("warnings", []))
    return f"<h2>Warnings</h2><ul>{items}</ul>" if items else ""


def samples(docs: list[dict[str, Any]]) -> str:
    if not docs:
        return ""
    parts = ["<h2>Sample documents</h2>"]
    for d in docs:
        more = " …" if d["cut"] else ""
        parts.append(
            f'<p><b>{h.text(d["id"])}</b> <span class="muted">phase {h.text(d["phase"])} '
            f"#{d['position']:,} · "
            f"{h.text(d['source'])} / {h.text(d['curated_source'])} · {d['tokens']:,} tokens · epoch "
            f"{h.text(d['epoch'])} · from {h.text(d['packing'])}</span></p>"
            f'<div class="doc">{h.text(d["text"])}{more}</div>'
        )
    return "".join(parts)


def timings(m: dict[str, Any]) -> str:
    rows = [(stage, f"{seconds:.2f}") for stage, seconds in m.get("timings", {}).items()]
    return "<h2>Timings</h2>" + h.table(["stage", "seconds"], rows) if rows else ""


def length_counts(shards: Shards) -> tuple[np.ndarray, int, int, int]:
    """Documents per power-of-two length bin, total tokens, documents and the longest, over
    every phase, streamed from the ``tokens`` column of the documents files."""
    counts = np.zeros(LOG2_BINS, dtype=np.int64)
    total = n = longest = 0
    for phase in shards.manifest["phases"]:
        for batch in pq.ParquetFile(shards.path / phase["documents_file"]).iter_batches(columns=["tokens"]):
            t = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64)
            if not t.size:
                continue
            bins = np.floor(np.log2(np.maximum(t, 1))).astype(np.int64)
            counts += np.bincount(np.minimum(bins, LOG2_BINS - 1), minlength=LOG2_BINS)
            total, n, longest = total + int(t.sum()), n + int(t.size), max(longest, int(t.max()))
    return counts, total, n, longest


def sample_documents(shards: Shards, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` documents drawn at random (seeded, the draw of ``assay prepare --inspect``),
    each read from one row group of its documents file and decoded from its first tokens."""
    out: list[dict[str, Any]] = []
    for p, position in draw_documents(shards, n, seed):
        row = _row(shards.path / shards.manifest["phases"][p]["documents_file"], position)
        packing = shards.packings(p)[0]
        tokens = shards.document_tokens(p, position, packing)
        # A token is at least one byte and a character at most four: this many tokens decode
        # to more than SAMPLE_CHARS characters, and a character cut at their end lies beyond.
        head = np.asarray(tokens[: 4 * SAMPLE_CHARS + 4])
        whole = head.size == tokens.size
        if whole and head.size and int(head[-1]) == shards.eos_id:
            head = head[:-1]
        text = shards.decode(head)
        out.append(
            {
                **row,
                "phase": shards.phases[p],
                "packing": packing,
                "text": text[:SAMPLE_CHARS],
                "cut": not whole or len(text) > SAMPLE_CHARS,
            }
        )
    return out


def _row(path: Path, position: int) -> dict[str, Any]:
    """Row ``position`` of a Parquet file, reading only the row group that holds it."""
    file = pq.ParquetFile(path)
    first = 0
    for group in range(file.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        if position < first + rows:
            return file.read_row_group(group).slice(position - first, 1).to_pylist()[0]
        first += rows
    raise FormatError(f"{path}: no row {position} ({first} rows)")


def prepare_report(folder: Path, seed: int = 0, samples_shown: int = SAMPLES) -> str:
    """The report of the prepared shards in ``folder``, as one self-contained HTML page."""
    shards = Shards(folder)
    m = shards.manifest
    mixture = m["recipe"].get("mixture") or {}
    tolerance = float(mixture.get("tolerance", MixtureSpec.model_fields["tolerance"].default))
    body = [
        header(m),
        sources(m),
        phases(m, tolerance),
        heldout(m),
        lengths(*length_counts(shards)),
        warnings(m),
        samples(sample_documents(shards, samples_shown, seed)),
        timings(m),
    ]
    return h.page(f"assay report: {m['name']}", [part for part in body if part])
