"""The funnel: documents and bytes in, kept, and rejected by each step, from a manifest."""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from assay.report.terminal import InertConsole


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _top(counts: dict[str, int], k: int = 3) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return ", ".join(f"{reason} {n:,}" for reason, n in items)


def funnel_table(manifest: dict[str, Any]) -> Table:
    """A rich table of the run's funnel: one row for the reader, one per step, totals."""
    read, totals = manifest["read"], manifest["totals"]
    table = Table(title=f"assay funnel: {manifest['name']}", title_justify="left")
    table.add_column("step", no_wrap=True)
    for column in ("docs in", "kept", "rejected", "bytes in → kept", "worker time"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("top reasons", ratio=1)
    table.add_row(
        "read", f"{read['records']:,}", f"{read['docs']:,}",
        f"{read['quarantined']:,} quarantined", _size(read["bytes"]), "",
        _top(read.get("errors", {})),
    )
    for s in manifest["steps"]:
        share = s["docs_rejected"] / s["docs_in"] if s["docs_in"] else 0.0
        table.add_row(
            s["name"], f"{s['docs_in']:,}", f"{s['docs_kept']:,}",
            f"{s['docs_rejected']:,} ({share:.0%})",
            f"{_size(s['bytes_in'])} → {_size(s['bytes_kept'])}", f"{s['seconds']:.1f}s",
            _top(s["reasons"]),
        )
    table.add_section()
    table.add_row(
        "total", f"{totals['in']:,}", f"{totals['kept']:,}", f"{totals['rejected']:,}",
        f"{_size(totals['bytes_in'])} → {_size(totals['bytes_kept'])}",
        f"{manifest['wall_seconds']:.1f}s", "wall time",
    )
    return table


def funnel(manifest: dict[str, Any]) -> list[RenderableType]:
    """The funnel table, the balance line and where the output went (raises KeyError or
    TypeError on a manifest of another shape)."""
    totals, out = manifest["totals"], manifest["output"]
    balanced = manifest["accounting"]["balanced"]
    balance = Text(
        f"in {totals['in']:,} = kept {totals['kept']:,} + rejected {totals['rejected']:,} "
        f"+ quarantined {totals['quarantined']:,}: "
    )
    balance.append("balanced" if balanced else "NOT balanced", "green" if balanced else "red")
    root = out["path"].rstrip("/")
    # Only the folders that hold something: a run with nothing rejected wrote no rejected/.
    parts = [f"{label} → {root}/{out[key]}" for label, key in
             (("kept", "kept"), ("rejected", "rejected"), ("quarantine", "quarantined"),
              ("generated", "generated")) if totals.get(key)]
    where = "  ".join([*parts, f"manifest → {root}/manifest.json"])
    note = ("worker time: the seconds each step took, summed over the workers that ran it in "
            "parallel (so it can exceed the wall time)")
    return [funnel_table(manifest), balance, *llm_lines(manifest), where, note]


def llm_lines(manifest: dict[str, Any]) -> list[str]:
    """One line per LLM step: requests, cache hits, tokens, cost, latency, errors."""
    lines = []
    for step in manifest["steps"]:
        llm = step.get("llm")
        if not llm:
            continue
        errors = ", ".join(f"{k} {v:,}" for k, v in llm["errors"].items()) or "none"
        generated = f", {step['generated']:,} documents generated" if step.get("generated") else ""
        lines.append(
            f"{step['name']}: {llm['requests']:,} requests sent, {llm['cache_hits']:,} answered from the "
            f"cache; tokens {llm['tokens_in']:,} in / {llm['tokens_out']:,} out; "
            f"cost ${llm['cost_usd']:.4f}; latency p50 {llm['latency_p50_s']:.2f}s "
            f"p95 {llm['latency_p95_s']:.2f}s; errors: {errors}{generated}")
    return lines


def print_funnel(manifest: dict[str, Any], console: Console | None = None) -> None:
    """Print :func:`funnel` on an inert console (names and reasons come from the recipe and
    the documents)."""
    console = console or InertConsole()
    for part in funnel(manifest):
        console.print(part)
