"""C4 quality: line cleaning and document rules worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from assay.documents import CORE_SCHEMA, REASON
from assay.steps.filters.c4 import C4Quality
from assay.text.spacy_words import WORDS


def run(text: str, **params: object) -> tuple[str, dict[str, int]]:
    out = C4Quality(**params).compute([text])
    assert out.texts is not None
    return out.texts[0], {name: values[0] for name, values in out.signals.items()}


def reason(text: str, **params: object) -> str | None:
    step = C4Quality(**params)
    out = step.compute([text])
    return step.decide({k: np.asarray(v) for k, v in out.signals.items()})[0]


MIXED = "\n".join(
    [
        "This is a good sentence. It has two.",  # kept, 2 sentences
        "Short line.",  # 2 words
        "No punctuation here",  # no terminal punctuation
        "Enable javascript to view this page.",  # javascript
        "Read our privacy policy for more info.",  # policy
        "A line with a citation.[1]",  # kept without "[1]", 1 sentence
        "Another fine line is here!",  # kept, 1 sentence
    ]
)


def test_line_rules_by_hand() -> None:
    text, s = run(MIXED)
    kept = (
        "This is a good sentence. It has two.\nA line with a citation.\nAnother fine line is here!"
    )
    assert text == kept
    assert s["n_lines"] == 7 and s["n_kept_lines"] == 3
    assert s["lines_few_words"] == 1
    assert s["lines_no_terminal_punct"] == 1
    assert s["lines_javascript"] == 1
    assert s["lines_policy"] == 1
    assert s["lines_long_word"] == 0
    assert s["n_sentences"] == 4
    assert s["lorem_ipsum_line"] == -1 and s["curly_bracket_line"] == -1
    assert s["chars_removed"] == len(MIXED) - len(kept)
    assert not s["has_bad_words"]
    # 4 sentences < 5.
    assert reason(MIXED) == "too_few_sentences"
    assert reason(MIXED + "\nOne more line here. And a last one.") is None


def test_citation_at_line_end_leaves_a_space() -> None:
    # "Some words here. [2]" -> "Some words here. " no longer ends in punctuation.
    _, s = run("Some words here. [2]")
    assert s["lines_no_terminal_punct"] == 1
    _, s = run("Some words here. [2]", remove_citations=False)
    assert s["lines_no_terminal_punct"] == 1  # ends in "]"


def test_long_word_and_ellipsis() -> None:
    _, s = run("a" * 1001 + " b c.")
    assert s["lines_long_word"] == 1
    _, s = run("a" * 1001 + " b c.", max_word_length=None)
    assert s["n_kept_lines"] == 1
    _, s = run("It goes on and on...")
    assert s["lines_no_terminal_punct"] == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # A sentence starts at a word after ".", "!" or "?" (case does not matter).
        ("Hello world. it continues", 2),
        # "e.g." is one word, so its periods end nothing; "..." is not a sentence end.
        ("e.g. this", 1),
        ("Wait... what?", 1),
        # Punctuation after the end mark does not start a sentence; the word after it does.
        ("Hi! ! Bye.", 2),
        ('"Stop." "Go."', 2),
        # Extra whitespace is a token of its own, so it starts a sentence after "?".
        ("Really?  !", 2),
        ("Really? !", 1),
        ("Это первое предложение. Это второе!", 2),
        ("", 0),
        ("   ", 1),
    ],
)
def test_sentence_count(line: str, expected: int) -> None:
    assert WORDS.count_sentences(line) == expected


def test_lorem_ipsum_and_curly_bracket_order() -> None:
    lorem = "Lorem ipsum dolor sit amet."
    curly = "Use {braces} in your code."
    five = "One is here. Two is here. Three is here. Four is here. Five is here."
    _, s = run("\n".join([five, curly, lorem]))
    assert (s["curly_bracket_line"], s["lorem_ipsum_line"]) == (1, 2)
    assert reason("\n".join([five, curly, lorem])) == "curly_bracket"
    assert reason("\n".join([five, lorem, curly])) == "lorem_ipsum"
    # Decision-time switches: no recomputation needed.
    assert reason("\n".join([five, curly, lorem]), filter_curly_bracket=False) == "lorem_ipsum"
    assert reason("\n".join([five, curly, lorem]), filter_lorem_ipsum=False,
                  filter_curly_bracket=False) is None  # fmt: skip
    # On one line lorem ipsum is checked first.
    assert reason("\n".join([five, "Lorem ipsum {x} dolor."])) == "lorem_ipsum"
    # A javascript line is dropped before its bracket is seen.
    _, s = run("\n".join([five, "Enable JavaScript {now} please."]))
    assert s["curly_bracket_line"] == -1
    # A line dropped earlier (no punctuation) does not count either.
    _, s = run("lorem ipsum dolor")
    assert s["lorem_ipsum_line"] == -1


def test_edge_cases() -> None:
    text, s = run("")
    assert text == "" and s["n_lines"] == 0 and s["n_sentences"] == 0
    assert reason("") == "too_few_sentences"
    text, s = run("  \n\t\n")
    assert text == "" and s["n_lines"] == 2 and s["chars_removed"] == 5
    text, s = run("hello")
    assert text == "" and s["lines_no_terminal_punct"] == 1
    # Windows newlines: splitlines drops "\r\n"; 36 characters become 35.
    text, s = run("Line one is here.\r\nLine two is here.")
    assert text == "Line one is here.\nLine two is here."
    assert s["n_sentences"] == 2 and s["chars_removed"] == 1
    # A very long line of short words is kept whole.
    long_line = "word " * 20000 + "end."
    text, s = run(long_line)
    assert text == long_line.strip() and s["n_sentences"] == 1


def test_bad_words_file(tmp_path: Path) -> None:
    words = tmp_path / "en.txt"
    words.write_text("darn\nheck\n", encoding="utf-8")
    five = "One is here. Two is here. Three is here. Four is here. Five is here."
    assert reason(five + "\nOh darn it all.", bad_words_file=str(words)) == (
        "document_removed_with_badwords"
    )
    assert reason(five + "\nOh darned it all.", bad_words_file=str(words)) is None
    assert reason(five + "\nOh darn it all.") is None  # no list, no rule


@pytest.mark.parametrize(("n", "expected"), [(4, "too_few_sentences"), (5, None)])
def test_sentence_threshold(n: int, expected: str | None) -> None:
    signals = {name: np.array([0]) for name in C4Quality.signal_types}
    signals.update(
        n_sentences=np.array([n]),
        lorem_ipsum_line=np.array([-1]),
        curly_bracket_line=np.array([-1]),
        has_bad_words=np.array([False]),
    )
    assert C4Quality().decide(signals)[0] == expected
    assert C4Quality(min_num_sentences=None).decide(signals)[0] is None


def test_step_on_core_table_rewrites_text() -> None:
    good = "\n".join(["Menu", *(f"This is sentence number {i} here." for i in range(6))])
    texts = [good, "Only a title"]
    table = pa.table(
        {"id": ["a", "b"], "text": texts, "source": ["t", "t"], "url": [None, None],
         "metadata": [None, None]},
        schema=CORE_SCHEMA,
    )  # fmt: skip
    out = C4Quality()(table)
    for signal in C4Quality.signal_types:
        assert f"c4_quality.{signal}" in out.column_names
    assert out.column(REASON).to_pylist() == [None, "too_few_sentences"]
    assert out.column("text").to_pylist()[0] == good.split("\n", 1)[1]
    assert out.column("c4_quality.chars_removed").to_pylist()[0] == len("Menu\n")
