"""``assay prepare --inspect SHARDS``: tokens per source, phase and bucket, and a decoded
random sample, from the manifest and the files.

Names, ids and texts come from the documents: print with an inert console
(:class:`assay.report.terminal.InertConsole`), which shows them as the characters they hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from assay.prepare.reader import Shards
from assay.report.terminal import inert


def draw_documents(shards: Shards, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` documents drawn at random (seeded) over all phases, as ``(phase, position)``."""
    rng = np.random.default_rng(seed)
    sizes = [int(p["documents"]) for p in shards.manifest["phases"]]
    total = sum(sizes)
    drawn = []
    for g in rng.choice(total, size=min(n, total), replace=False) if total else []:
        p = int(np.searchsorted(np.cumsum(sizes), g, side="right"))
        drawn.append((p, int(g) - sum(sizes[:p])))
    return drawn


def sample_documents(shards: Shards, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` documents drawn at random (seeded) over all phases, decoded back to text."""
    out: list[dict[str, Any]] = []
    for p, position in draw_documents(shards, n, seed):
        row = shards.documents(p).slice(position, 1).to_pylist()[0]
        packing = shards.packings(p)[0]
        out.append({"phase": shards.phases[p], **row, "packing": packing,
                    "text": shards.document_text(p, position, packing)})
    return out


def print_inspection(shards: Shards, console: Console, samples: int = 2, seed: int = 0,
                     width: int = 400) -> None:
    """Print the tables and ``samples`` decoded documents."""
    m = shards.manifest
    tok = m["tokenizer"]
    console.print(Text.assemble(
        (inert(str(m["name"])), "bold"),
        inert(f": {m['totals']['tokens']:,} tokens, {m['totals']['documents']:,} documents; tokenizer "
              f"vocab {tok['vocab_size']:,} ({tok['dtype']}, EOS {tok['eos']!r} = {tok['eos_id']}, "
              f"engine {tok['engine']})")))
    src = Table("source", "documents", "unique tokens", "tokens", "epochs", "effective tokens", "value",
                title="sources (effective data: Muennighoff et al. 2023)")
    for name, s in m["sources"].items():
        src.add_row(name, f"{s['documents']:,}", f"{s['unique_tokens']:,}", f"{s['tokens']:,}",
                    f"{s['epochs']:.3f}", f"{s['effective_tokens']:,.0f}", f"{s['effective_fraction']:.1%}")
    console.print(src)
    for p in m["phases"]:
        table = Table("source", "requested", "tokens", "share", "requested share", "miss", "documents",
                      title=f"phase {p['name']} ({p['fraction']:.0%} of the run): {p['tokens']:,} tokens")
        for name, s in p["sources"].items():
            table.add_row(name, f"{s['requested_tokens']:,.0f}", f"{s['tokens']:,}", f"{s['share']:.2%}",
                          f"{s['requested_share']:.2%}", f"{s['miss']:+.3%}", f"{s['documents']:,}")
        console.print(table)
        if "concat" in p:
            c = p["concat"]
            console.print(f"  concat: {len(c['files'])} file(s), {c['windows']:,} windows of "
                          f"{c['context']:,}+1 tokens")
        if "decompose" in p:
            buckets = Table("bucket", "pieces", "tokens", title=f"Dataset Decomposition, phase {p['name']}")
            for key, b in p["decompose"]["buckets"].items():
                label = "rest (< 2^min)" if key == "rest" else f"2^{key} = {1 << int(key):,}"
                buckets.add_row(label, f"{b['pieces']:,}", f"{b['tokens']:,}")
            console.print(buckets)
    if shards.has_heldout:
        h = m["heldout"]
        per_source = ", ".join(f"{k} {v['documents']:,}" for k, v in h["sources"].items())
        console.print(f"held-out split (never trained on): {h['tokens']:,} tokens, {h['documents']:,} "
                      f"documents ({per_source})")
    for warning in m.get("warnings", []):
        console.print(Text.assemble(("warning:", "yellow"), " " + inert(str(warning))))
    for doc in sample_documents(shards, samples, seed):
        text = doc["text"]
        shown = text[:width] + ("…" if len(text) > width else "")
        console.print()
        console.print(Text.assemble(
            ("sample", "bold"),
            inert(f" phase {doc['phase']} #{doc['position']} id {inert(str(doc['id']), one_line=True)} "
                  f"({doc['source']} / {doc['curated_source']}, {doc['tokens']:,} tokens, epoch "
                  f"{doc['epoch']}, from {doc['packing']}):")))
        console.print(shown)

