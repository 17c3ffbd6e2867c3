"""ProX programs: parse what a model wrote as a list of whitelisted calls, then run them.

Zhou et al. 2024, "Programming Every Example: Lifting Pre-training Data Quality like
Experts at Scale" (ProX): a small model writes, per document, a program of a few allowed
functions, which is then executed. At the document level, ``drop_doc()`` or ``keep_doc()``;
per chunk of numbered lines, ``remove_lines(line_start, line_end)`` (both inclusive),
``normalize(source_str, target_str)`` (replace every occurrence) and ``keep_chunk()``. A
program with two or more calls that do not parse is ignored (the chunk stays as it was), and
a document left with under 5% of its words, or under 10 words, is dropped.

The model's text is never evaluated. Each line is parsed by Python's ``ast`` and accepted
only as a single call of an allowed name whose arguments are literal strings or integers
within bounds: no attribute access, no nested calls, no names, no operators, no huge
literals. Anything else is an unparseable call.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field

# Allowed calls and their parameters, in order, with the literal type each takes.
ALLOWED: dict[str, tuple[tuple[str, type], ...]] = {
    "drop_doc": (),
    "keep_doc": (),
    "keep_chunk": (),
    "remove_lines": (("line_start", int), ("line_end", int)),
    "normalize": (("source_str", str), ("target_str", str)),
}
MAX_LINE_CHARS = 4_000  # a longer line is not a call a model meant
MAX_STRING_CHARS = 2_000
MAX_LINE_NUMBER = 100_000
MIN_KEPT_SHARE = 0.05  # ProX drops a document left with under 5% of its words ...
MIN_KEPT_WORDS = 10  # ... or under 10 words
MAX_UNPARSEABLE = 1  # two or more unparseable calls: the program is ignored


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[int | str, ...] = ()


@dataclass
class Program:
    calls: list[Call] = field(default_factory=list)
    unparseable: list[str] = field(default_factory=list)  # why each refused line was refused

    @property
    def ignored(self) -> bool:
        return len(self.unparseable) > MAX_UNPARSEABLE


def parse_program(text: str) -> Program:
    """Every non-blank line of ``text`` (code fences and ``#`` comments skipped) as a call."""
    program = Program()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("```", "#")):
            continue
        call = parse_call(line)
        if isinstance(call, Call):
            program.calls.append(call)
        else:
            program.unparseable.append(call)
    return program


def parse_call(line: str) -> Call | str:
    """One allowed call with literal arguments, or the reason the line is not one."""
    if len(line) > MAX_LINE_CHARS:
        return f"longer than {MAX_LINE_CHARS} characters"
    try:
        tree = ast.parse(line, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return f"not a call: {type(exc).__name__}"
    node = tree.body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return "not a call of a plain function name"
    params = ALLOWED.get(node.func.id)
    if params is None:
        return f"{node.func.id[:40]!r} is not an allowed function"
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        return "unpacked arguments"
    if len(node.args) > len(params):
        return f"{node.func.id} takes {len(params)} arguments"
    given: dict[str, ast.expr] = {name: arg for (name, _), arg in zip(params, node.args, strict=False)}
    for keyword in node.keywords:
        if keyword.arg in given or keyword.arg not in dict(params):
            return f"unexpected or repeated argument {str(keyword.arg)[:40]!r}"
        given[keyword.arg] = keyword.value
    values: list[int | str] = []
    for name, kind in params:
        if name not in given:
            return f"{node.func.id} needs {name}"
        value = _literal(given[name], kind)
        if value is None:
            return f"{name} is not a {kind.__name__} literal within bounds"
        values.append(value)
    return Call(node.func.id, tuple(values))


def _literal(node: ast.expr, kind: type) -> int | str | None:
    if not isinstance(node, ast.Constant) or type(node.value) is not kind:  # bool is not int here
        return None
    value = node.value
    if kind is int and not 0 <= value <= MAX_LINE_NUMBER:
        return None
    if kind is str and len(value) > MAX_STRING_CHARS:
        return None
    return value


def keeps_document(program: Program) -> bool:
    """The document-level decision: dropped only by an explicit ``drop_doc()`` in a program
    that is not ignored."""
    return program.ignored or not any(c.name == "drop_doc" for c in program.calls)


@dataclass(frozen=True)
class ChunkResult:
    text: str
    errors: int  # calls that could not apply (lines out of range, text not found)
    ignored: bool  # the program had too many unparseable calls: the chunk is unchanged


def run_chunk_program(chunk: str, program: Program) -> ChunkResult:
    """Apply a chunk-level program to ``chunk``, whose lines the model saw numbered from 0.

    Line removals refer to the original numbering whatever their order; normalisations then
    apply in the program's order to what is left.
    """
    if program.ignored:
        return ChunkResult(chunk, 0, True)
    lines = chunk.split("\n")
    removed: set[int] = set()
    errors = 0
    for call in program.calls:
        if call.name == "remove_lines":
            start, end = call.args
            assert isinstance(start, int) and isinstance(end, int)
            if start > end or end >= len(lines):
                errors += 1
                continue
            removed.update(range(start, end + 1))
        elif call.name not in ("normalize", "keep_chunk"):
            errors += 1  # a document-level call in a chunk program
    text = "\n".join(line for i, line in enumerate(lines) if i not in removed)
    for call in program.calls:
        if call.name == "normalize":
            source, target = call.args
            assert isinstance(source, str) and isinstance(target, str)
            if not source or source not in text:
                errors += 1
                continue
            text = text.replace(source, target)
    return ChunkResult(text, errors, False)


def numbered(chunk: str) -> str:
    """The chunk as the model sees it: each line prefixed by its number, ``[000] ...``."""
    return "\n".join(f"[{i:03d}] {line}" for i, line in enumerate(chunk.split("\n")))


def too_little_left(original: str, refined: Sequence[str] | str) -> bool:
    """Whether a refined document keeps under 5% of the original's words, or under 10."""
    text = refined if isinstance(refined, str) else "\n".join(refined)
    before, after = len(original.split()), len(text.split())
    return after < MIN_KEPT_WORDS or after < MIN_KEPT_SHARE * before
