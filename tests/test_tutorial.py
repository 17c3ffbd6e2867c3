"""docs/tutorial.md, run: its commands in order, in a scratch copy of examples/ and data/sample/.

The page's ```console blocks hold commands (lines starting with ``$ ``) followed by the output
they printed; a ```python block with ``title="NAME"`` is a file the reader saves as NAME.
``<!-- check: TEXT -->`` after a console block names a line that matters: TEXT must appear in
the output the page shows and in the output the commands print now (whitespace-insensitive,
so wrapping and table padding do not count). Every command must exit 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "tutorial.md"

_FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\n((?:<!-- check: [^\n]+ -->\n)*)", re.M | re.S)
_CHECK = re.compile(r"<!-- check: (.+) -->")
_TITLE = re.compile(r'title="([^"]+)"')


@dataclass
class Block:
    """A console block (commands, the output shown, checks) or a file to write (``file``)."""

    commands: list[str] = field(default_factory=list)
    shown: str = ""
    checks: list[str] = field(default_factory=list)
    file: str | None = None
    text: str = ""


def parse(page: str) -> list[Block]:
    blocks = []
    for lang, info, body, checks in _FENCE.findall(page):
        if lang == "console":
            lines = body.splitlines()
            blocks.append(Block(commands=[line[2:] for line in lines if line.startswith("$ ")],
                                shown="\n".join(line for line in lines if not line.startswith("$ ")),
                                checks=_CHECK.findall(checks)))
        elif lang == "python" and (title := _TITLE.search(info)):
            blocks.append(Block(file=title.group(1), text=body))
    return blocks


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_page_parses_into_commands_and_checks() -> None:
    blocks = parse(PAGE.read_text(encoding="utf-8"))
    commands = [c for b in blocks for c in b.commands]
    for verb in ("run", "inspect", "prepare", "train", "compare", "fit", "plan"):
        assert any(c.startswith(f"assay {verb} ") for c in commands), verb
    assert all(b.checks for b in blocks if b.commands), "every console block checks a line"


def test_tutorial_commands_run_and_print_what_the_page_shows(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "data" / "sample", tmp_path / "data" / "sample")
    # `assay` and `python` are this interpreter's; 140 columns is the width the page was
    # captured at (the checks do not depend on it).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "140"}
    for block in parse(PAGE.read_text(encoding="utf-8")):
        if block.file is not None:
            (tmp_path / block.file).write_text(block.text, encoding="utf-8")
            continue
        printed = ""
        for command in block.commands:
            done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=120)
            printed += done.stdout + done.stderr
            assert done.returncode == 0, f"$ {command}\n{done.stdout}{done.stderr}"
        for check in block.checks:
            assert _flat(check) in _flat(block.shown), f"the page does not show {check!r}"
            assert _flat(check) in _flat(printed), f"{block.commands} no longer print {check!r}:\n{printed}"
