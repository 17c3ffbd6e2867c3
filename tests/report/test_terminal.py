"""Printing what assay did not write: nothing a string holds reaches the terminal as a command."""

from __future__ import annotations

import io

from rich.table import Table

from assay.report.terminal import InertConsole, inert


def test_inert_escapes_controls_and_keeps_plain_text() -> None:
    plain = "plain text, ünïcode, 日本語 [bold]x[/bold] :art:"
    assert inert(plain) == plain
    assert inert("a\x1b[2Jb\x07c\x9bd\x7f") == "a\\x1b[2Jb\\x07c\\x9bd\\x7f"
    assert inert("line\nnext\ttab\rcr") == "line\nnext\ttab\\rcr"
    assert inert("line\nnext\ttab", one_line=True) == "line\\nnext\\ttab"
    assert inert("abc\u202edef\u2066") == "abc\\u202edef\\u2066"


def test_the_console_prints_markup_emoji_and_escapes_as_characters() -> None:
    buffer = io.StringIO()
    console = InertConsole(file=buffer, width=200, force_terminal=True, color_system=None)
    hostile = "[/red] [link=https://evil.example/]x[/link] fortune:art:3 \x1b]0;title\x07 \x1b[2J"
    console.print(hostile)
    table = Table(hostile, title=hostile)
    table.add_row(hostile)
    console.print(table)
    console.print(hostile, markup=True, emoji=True)  # a caller cannot turn them back on
    # printed: twice by itself, and as the table's title, header and cell
    printed = buffer.getvalue()
    assert "\x1b" not in printed and "\x07" not in printed and "🎨" not in printed
    assert printed.count("[/red] [link=https://evil.example/]x[/link] fortune:art:3 \\x1b]0;title\\x07") == 5
