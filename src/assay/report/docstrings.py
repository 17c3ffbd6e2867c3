"""Step docstrings for people: the terminal (``assay steps NAME``) and the manual (``docs/``).

Docstrings are written in reStructuredText for the code's readers (``literal``,
:func:`assay.steps.dedup.lsh.choose_bands`); both views come from this module, so the manual and
the command cannot drift from the code or from each other.
"""

from __future__ import annotations

import inspect
import re

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc or "").split("\n", 1)[0]


def as_markdown(doc: str | None) -> str:
    """The docstring as Markdown: ``x`` becomes `x`, a role such as :func:`a.b` becomes `a.b`."""
    text = inspect.cleandoc(doc or "")
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)


def as_text(doc: str | None) -> str:
    """The docstring as terminal text: markup removed, and the hard line breaks joined inside
    paragraphs and list items, so the terminal wraps it at its own width."""
    text = as_markdown(doc).replace("`", "")
    blocks = []
    for block in text.split("\n\n"):
        items: list[str] = []
        for line in block.split("\n"):
            if not items or line.lstrip().startswith(("* ", "- ")):
                items.append(line.strip())
            else:
                items[-1] += " " + line.strip()
        blocks.append("\n".join(items))
    return "\n\n".join(blocks)
