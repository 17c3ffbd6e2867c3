"""MkDocs hook: the step reference (``reference/steps.md``), written from the step registry.

The page is generated at every build and handed to MkDocs as a generated file (MkDocs 1.6's
``File.generated``), so it exists only inside the build: nothing generated is committed, a
build cannot use a stale copy, and the manual says what ``assay steps NAME`` says, both being
read from the step classes (their docstrings through :mod:`assay.report.docstrings`, their
parameters from the pydantic models, their signals from ``signal_types``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from pydantic_core import PydanticUndefined

from assay.report.docstrings import as_markdown, first_line
from assay.steps import step_class, step_names

PAGE = "reference/steps.md"

_CODE = re.compile(r"(`[^`]*`)")
_QUALIFIED = re.compile(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, PAGE, content=steps_page()))
    return files


def steps_page() -> str:
    """The whole reference page: an index, then one section per registered step."""
    names = step_names()
    lines = [
        "# Step reference",
        "",
        "Generated at every build from the step registry: each step's docstring, parameters "
        "(the pydantic model a recipe is validated against) and signals, as "
        "`assay steps NAME` prints them. The overview is on [Steps](../steps.md).",
        "",
        "| step | kind | what it does |",
        "|---|---|---|",
    ]
    for name in names:
        summary = _escape(first_line(step_class(name).__doc__))
        lines.append(f"| [`{name}`](#{name}) | {step_class(name).kind} | {_cell(summary)} |")
    for name in names:
        lines += ["", step_section(name)]
    return "\n".join(lines) + "\n"


def step_section(name: str) -> str:
    """One step: heading, kind, docstring, parameter table and signal names."""
    cls = step_class(name)
    lines = [f"## {name} {{#{name}}}", "", f"Kind: **{cls.kind}**.", "",
             _escape(as_markdown(cls.__doc__)), "", "**Parameters**", ""]
    fields = cls.Params.model_fields
    if fields:
        lines += ["| parameter | type | default | description |", "|---|---|---|---|"]
        for field_name, field in fields.items():
            description = _escape(as_markdown(field.description)) if field.description else ""
            lines.append(f"| `{field_name}` | `{_type_name(field.annotation)}` | "
                         f"{_default(field)} | {_cell(description)} |")
    else:
        lines.append("None.")
    signals = [f"`{name}.{signal}`" for signal in cls.signal_types]
    lines += ["", "**Signals**: " + (", ".join(signals) if signals else "none") + "."]
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    """``int | None``, ``Literal['a', 'b']``, ``list[BenchmarkSpec]``: module paths dropped."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return _QUALIFIED.sub(r"\1", text)


def _default(field: Any) -> str:
    """The default as a recipe writes it (YAML/JSON), or "required"."""
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "required"
    try:
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    except TypeError:
        return f"`{value!r}`"


def _escape(text: str) -> str:
    """Backslashes, ``<`` and ``>`` outside code spans kept as written: ``\\(`` stays a
    backslash and a parenthesis, ``<pre>`` reads as text, not as HTML."""
    parts = _CODE.split(text)
    return "".join(part if part.startswith("`") else
                   part.replace("\\", "\\\\").replace("<", "&lt;").replace(">", "&gt;")
                   for part in parts)


def _cell(text: str) -> str:
    """Text for one table cell: one line, pipes outside code spans escaped (the table
    extension already leaves a pipe inside a code span alone)."""
    parts = _CODE.split(" ".join(text.split()))
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)
