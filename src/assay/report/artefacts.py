"""The run report's step artefacts: what each global step's fit found (decontamination per
benchmark, DSIR's KL reduction per target, a classifier's score quantiles, dedup counts) and
what other steps summed into the manifest (an LLM step's requests, tokens and cost).

Rendered from the manifest's step entries, whatever their keys: numbers and strings as one
table, a mapping of mappings (one row per benchmark) or a list of mappings (one row per
DSIR target) as a table of its own.
"""

from __future__ import annotations

from typing import Any

from assay.report import html as h

# The funnel's own keys in a manifest step entry; anything else a step added is an artefact.
FUNNEL_KEYS = {"name", "kind", "docs_in", "docs_kept", "docs_rejected", "bytes_in", "bytes_kept",
               "bytes_rejected", "reasons", "seconds", "generated", "counters"}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _is_rows(value: Any) -> bool:
    return (isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)) or (
        isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values()))


def summary_tables(summary: dict[str, Any]) -> str:
    """A summary as HTML tables: its scalars in one, each set of rows in its own."""
    plain = [(key, _cell(value)) for key, value in summary.items() if not _is_rows(value)]
    parts = [h.table(["", "value"], plain)] if plain else []
    for key, value in summary.items():
        if not _is_rows(value):
            continue
        rows = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
        columns = list(dict.fromkeys(k for _, row in rows for k in row))
        header = ([key] if isinstance(value, dict) else []) + columns
        body = [([name] if isinstance(value, dict) else []) + [_cell(row.get(c, "")) for c in columns]
                for name, row in rows]
        parts.append(f"<p><b>{h.text(key)}</b></p>" + h.table(header, body))
    return "".join(parts)


def artefacts_section(steps: list[dict[str, Any]]) -> str:
    """One block per step with a fit summary or figures of its own, or "" when none has."""
    parts = []
    for step in steps:
        extra = {k: v for k, v in step.items() if k not in FUNNEL_KEYS and k != "fit"}
        fit = step.get("fit", {}).get("summary") if isinstance(step.get("fit"), dict) else None
        if not extra and not fit:
            continue
        parts.append(f"<h3>{h.text(step['name'])}</h3>")
        if fit:
            parts.append(summary_tables(fit))
        for key, value in extra.items():
            parts.append(summary_tables(value if isinstance(value, dict) else {key: value}))
    return '<h2 id="artefacts">Step artefacts</h2>' + "".join(parts) if parts else ""
