"""ProX programs: whitelisted calls parse, hostile text is refused without being run, and
programs apply to chunks as the paper describes."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.llm.prox import (
    Call,
    keeps_document,
    numbered,
    parse_call,
    parse_program,
    run_chunk_program,
    too_little_left,
)


def test_allowed_calls_parse_with_positional_or_keyword_literals() -> None:
    assert parse_call("drop_doc()") == Call("drop_doc")
    assert parse_call("remove_lines(line_start=0, line_end=3)") == Call("remove_lines", (0, 3))
    assert parse_call("remove_lines(2, line_end=4)") == Call("remove_lines", (2, 4))
    assert parse_call('normalize(source_str="Click here", target_str="")') == Call(
        "normalize", ("Click here", ""))


@pytest.mark.parametrize("line", [
    "__import__('os').system('touch {marker}')",
    "open('{marker}', 'w')",
    "os.remove('x')",
    "keep_doc().__class__",
    "remove_lines(line_start=len('abc'), line_end=3)",
    "normalize(source_str=f'{{x}}', target_str='')",
    "normalize(source_str='a' * 10**9, target_str='')",
    "normalize(source_str='" + "a" * 3000 + "', target_str='')",
    "remove_lines(line_start=0, line_end=10**12)",
    "remove_lines(line_start=True, line_end=3)",
    "remove_lines(line_start=-1, line_end=3)",
    "remove_lines(0, 1, 2)",
    "remove_lines(**{{'line_start': 0}})",
    "remove_lines(line_start=0, line_start=1)",
    "keep_doc(); drop_doc()",
    "lambda: drop_doc()",
    "[drop_doc() for _ in range(10**9)]",
    "(" * 5000 + ")" * 5000,
    "drop_doc(" + "(" * 1900 + "1" + ")" * 1900 + ")",  # deep nesting within the length limit
    "drop_doc(" + "9" * 5000 + ")",
])
def test_hostile_lines_are_unparseable_and_never_run(tmp_path: Path, line: str) -> None:
    marker = tmp_path / "ran"
    result = parse_call(line.format(marker=marker))
    assert isinstance(result, str) and result
    assert not marker.exists()


def test_two_unparseable_calls_make_the_program_ignored() -> None:
    one_bad = parse_program("```python\nremove_lines(line_start=0, line_end=0)\nbad(\n```")
    assert len(one_bad.calls) == 1 and len(one_bad.unparseable) == 1 and not one_bad.ignored
    two_bad = parse_program("remove_lines(0, 0)\nbad(\nos.system('x')\n")
    assert two_bad.ignored
    chunk = "first\nsecond"
    result = run_chunk_program(chunk, two_bad)
    assert result.ignored and result.text == chunk


def test_document_decisions() -> None:
    assert not keeps_document(parse_program("drop_doc()"))
    assert keeps_document(parse_program("keep_doc()"))
    assert keeps_document(parse_program("drop_doc()\nx(\ny("))  # ignored: kept as it was


def test_chunk_programs_remove_lines_by_original_number_then_normalise() -> None:
    chunk = "Home | About | Contact\nThe mitochondria is the powerhouse.\nIt makes ATP.\nShare on Facebook"
    assert numbered(chunk).splitlines()[1] == "[001] The mitochondria is the powerhouse."
    program = parse_program(
        "remove_lines(line_start=3, line_end=3)\n"
        "remove_lines(line_start=0, line_end=0)\n"
        'normalize(source_str="powerhouse", target_str="power plant")\n'
        "keep_chunk()\n"
    )
    result = run_chunk_program(chunk, program)
    assert result.text == "The mitochondria is the power plant.\nIt makes ATP."
    assert result.errors == 0 and not result.ignored


def test_calls_that_cannot_apply_are_counted() -> None:
    program = parse_program("remove_lines(2, 9)\nremove_lines(3, 1)\nnormalize('absent', 'x')\ndrop_doc()")
    result = run_chunk_program("a\nb\nc", program)
    assert result.text == "a\nb\nc" and result.errors == 4


def test_too_little_left_follows_the_papers_rule() -> None:
    original = " ".join(["word"] * 400)
    assert too_little_left(original, " ".join(["word"] * 19))  # under 5% of 400
    assert not too_little_left(original, " ".join(["word"] * 20))
    assert too_little_left("a b c d e f g h i j k l", "a b c d e f g h i")  # under 10 words
