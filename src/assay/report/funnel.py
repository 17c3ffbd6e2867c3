"""The funnel: documents and bytes in, kept, and rejected by each step, from a manifest."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


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
    """A rich table of the run's funnel."""
    read, totals = manifest["read"], manifest["totals"]
    table = Table(title=f"assay funnel: {manifest['name']}", title_justify="left")
    for column, justify in (("step", "left"), ("docs in", "right"), ("kept", "right"),
                            ("rejected", "right"), ("bytes in → kept", "right"),
                            ("top reasons", "left"), ("time", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_row(
        "read", f"{read['records']:,}", f"{read['docs']:,}", f"{read['quarantined']:,} quarantined",
        _size(read["bytes"]), _top(read.get("errors", {})), "",
    )
    for s in manifest["steps"]:
        share = s["docs_rejected"] / s["docs_in"] if s["docs_in"] else 0.0
        table.add_row(
            f"{s['name']} ({s['kind']})", f"{s['docs_in']:,}", f"{s['docs_kept']:,}",
            f"{s['docs_rejected']:,} ({share:.1%})",
            f"{_size(s['bytes_in'])} → {_size(s['bytes_kept'])}", _top(s["reasons"]),
            f"{s['seconds']:.1f}s",
        )
    table.add_section()
    table.add_row(
        "total", f"{totals['in']:,}", f"{totals['kept']:,}",
        f"{totals['rejected']:,} + {totals['quarantined']:,} quarantined",
        f"{_size(totals['bytes_in'])} → {_size(totals['bytes_kept'])}", "",
        f"{manifest['wall_seconds']:.1f}s wall",
    )
    return table


def print_funnel(manifest: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(funnel_table(manifest))
    totals, out = manifest["totals"], manifest["output"]
    balanced = manifest["accounting"]["balanced"]
    check = "[green]balanced[/green]" if balanced else "[red]NOT balanced[/red]"
    console.print(
        f"in {totals['in']:,} = kept {totals['kept']:,} + rejected {totals['rejected']:,} "
        f"+ quarantined {totals['quarantined']:,}: {check}"
    )
    root = out["path"].rstrip("/")
    console.print(
        f"kept → {root}/{out['kept']}  rejected → {root}/{out['rejected']}  "
        f"quarantine → {root}/{out['quarantined']}  manifest → {root}/manifest.json"
    )
