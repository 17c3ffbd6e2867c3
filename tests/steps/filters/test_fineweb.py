"""FineWeb quality: signals worked out by hand, decisions at thresholds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from assay.documents import CORE_SCHEMA, REASON
from assay.steps.filters.fineweb import FineWebQuality


def signals(text: str, **params: object) -> dict[str, float]:
    out = FineWebQuality(**params).compute([text])
    return {name: float(values[0]) for name, values in out.signals.items()}


def test_signals_by_hand() -> None:
    # Lines (split on "\n", blank ones dropped): "Hello world." (12 characters), "short"
    # (5), "Another line without punct" (26). One ends in "." -> 1/3; all three have at
    # most 30 characters -> 1. No line repeats. 3 newlines over 8 words (Hello world .
    # short Another line without punct) -> 3/8.
    s = signals("Hello world.\nshort\n\nAnother line without punct")
    assert s["n_lines"] == 3
    assert s["line_punct_ratio"] == pytest.approx(1 / 3)
    assert s["short_line_ratio"] == 1.0
    assert s["char_dup_ratio"] == 0
    assert s["newline_ratio"] == pytest.approx(3 / 8)


def test_duplicated_lines_non_latin() -> None:
    # "Привет мир.\nПривет мир." (23 characters, 22 without the newline): the second line
    # (11 characters) repeats the first -> 11/22. Words: Привет мир . Привет мир . -> 1/6.
    s = signals("Привет мир.\nПривет мир.")
    assert s["line_punct_ratio"] == 1.0
    assert s["char_dup_ratio"] == pytest.approx(0.5)
    assert s["newline_ratio"] == pytest.approx(1 / 6)
    # "你好。世界。": one line ending in "。" (terminal punctuation); words 你好。世界 and 。
    s = signals("你好。世界。")
    assert s["line_punct_ratio"] == 1.0 and s["newline_ratio"] == 0


def test_windows_newlines_leave_carriage_returns() -> None:
    # Lines "One sentence.\r" and "Two sentence.\r" end in "\r", not "." (as in datatrove).
    # 2 newlines over 6 words (One sentence . Two sentence .).
    s = signals("One sentence.\r\nTwo sentence.\r\n")
    assert s["n_lines"] == 2
    assert s["line_punct_ratio"] == 0
    assert s["newline_ratio"] == pytest.approx(2 / 6)


def test_edge_cases() -> None:
    assert signals("")["n_lines"] == 0
    assert signals("  \n \n")["n_lines"] == 0
    single = signals("hello")
    assert (single["n_lines"], single["line_punct_ratio"], single["newline_ratio"]) == (1, 0, 0)
    # One line of 51 characters: not short.
    long_line = signals("a" * 50 + ".")
    assert long_line["short_line_ratio"] == 0 and long_line["line_punct_ratio"] == 1.0


def test_short_line_length_and_stop_chars_params() -> None:
    # "abc!" (4 characters): short at length 4, not at 3; "!" is not a stop char if only
    # "." is.
    assert signals("abc!", short_line_length=3)["short_line_ratio"] == 0
    assert signals("abc!", short_line_length=4)["short_line_ratio"] == 1
    assert signals("abc!", stop_chars=(".",))["line_punct_ratio"] == 0
    assert signals("abc.!", stop_chars=(".!",))["line_punct_ratio"] == 1


def decide(step: FineWebQuality, **values: float) -> str | None:
    passing = {
        "n_lines": 10,
        "line_punct_ratio": 1.0,
        "short_line_ratio": 0.0,
        "char_dup_ratio": 0.0,
        "newline_ratio": 0.1,
    }
    passing.update(values)
    return step.decide({k: np.array([v]) for k, v in passing.items()})[0]


@pytest.mark.parametrize(
    ("signal", "ok", "bad", "reason", "param"),
    [
        ("line_punct_ratio", 0.12, 0.119, "line_punct_ratio", "line_punct_thr"),
        ("short_line_ratio", 0.67, 0.671, "short_line_ratio", "short_line_thr"),
        ("char_dup_ratio", 0.01, 0.0101, "char_dup_ratio", "char_duplicates_ratio"),
        ("newline_ratio", 0.3, 0.301, "list_ratio", "new_line_ratio"),
    ],
)
def test_thresholds(signal: str, ok: float, bad: float, reason: str, param: str) -> None:
    step = FineWebQuality()
    assert decide(step, **{signal: ok}) is None
    assert decide(step, **{signal: bad}) == reason
    assert decide(FineWebQuality(**{param: None}), **{signal: bad}) is None


def test_exclude_zero_order_and_empty() -> None:
    assert decide(FineWebQuality(), line_punct_ratio=0.0) == "line_punct_ratio"
    assert decide(FineWebQuality(line_punct_exclude_zero=True), line_punct_ratio=0.0) is None
    assert decide(FineWebQuality(), short_line_ratio=1.0, newline_ratio=1.0) == "short_line_ratio"
    assert decide(FineWebQuality(), n_lines=0) == "empty"


def test_step_on_core_table() -> None:
    texts = [
        "This is a complete sentence that is long enough.\nAnd here is another one, also long.",
        "",
        "menu\nhome\nabout\ncontact",
    ]
    n = len(texts)
    table = pa.table(
        {"id": list("abc"), "text": texts, "source": ["t"] * n, "url": [None] * n,
         "metadata": [None] * n},
        schema=CORE_SCHEMA,
    )  # fmt: skip
    out = FineWebQuality()(table)
    for signal in FineWebQuality.signal_types:
        assert f"fineweb_quality.{signal}" in out.column_names
    assert out.column(REASON).to_pylist() == [None, "empty", "line_punct_ratio"]
