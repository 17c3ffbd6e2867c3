"""Showing text assay did not write: a document, an id, a recipe's name, a path.

Nothing printed is interpreted: Rich markup and emoji codes are off, and control characters
are shown escaped (``\\x1b``), so a document cannot clear the screen, retitle the window or
plant a hyperlink. assay's own colours are added as :class:`~rich.text.Text` styles, never
as markup, and strings put into a ``Text`` go through :func:`inert` first.
"""

from __future__ import annotations

import os
import re
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a line shows.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_ONE_LINE = re.compile(f"[\t\n{_CONTROLS}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``).

    Line feeds and tabs are kept unless ``one_line`` (for ids, names and paths)."""
    return (_UNSAFE_ONE_LINE if one_line else _UNSAFE).sub(_escaped, text)


class InertConsole(Console):
    """A console that shows every string as the characters it holds: no markup, no emoji
    codes, no highlighting, control characters escaped."""

    def __init__(self, **options: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **options)
        if not self.is_terminal and "COLUMNS" not in os.environ:
            # Logs and pipes: Rich would assume 80 columns and wrap or cut tables.
            self.width = max(self.width, 160)

    def render_str(self, text: str, **options: Any) -> Text:
        options.update(markup=False, emoji=False)
        return super().render_str(inert(text), **options)
