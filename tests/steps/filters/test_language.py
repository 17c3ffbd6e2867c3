"""The language step: lid.176 labels, scores and keep decisions.

The fixture holds the first ten UDHR paragraphs (public domain, nltk_data udhr2) of ten
languages, labelled with lid.176 codes.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from assay.steps.base import step_class
from assay.steps.filters.language import LID176_LANGUAGES, UNDETERMINED, LanguageFilter

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "langid_udhr.jsonl"

ENGLISH = "The committee will publish its findings on the new railway line next spring."
RUSSIAN = "Комитет опубликует свои выводы о новой железной дороге следующей весной."
CHINESE = "委员会将于明年春天公布关于这条新铁路线的调查结果。"
GERMAN = "Der Ausschuss wird seine Ergebnisse zur neuen Bahnstrecke im nächsten Frühjahr vorlegen."


def table(texts: list[str]) -> pa.Table:
    return pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})


@pytest.fixture(scope="module")
def labeller() -> LanguageFilter:
    step = LanguageFilter(keep=None)
    step.ensure_setup()
    return step


def labels(step: LanguageFilter, texts: list[str]) -> tuple[list[str], list[float]]:
    out = step(table(texts))
    return (
        out.column("language.language").to_pylist(),
        out.column("language.language_score").to_pylist(),
    )


def test_registered_as_filter() -> None:
    assert step_class("language") is LanguageFilter
    assert LanguageFilter.kind == "filter"
    assert LanguageFilter().params.keep == ["en"]
    assert LanguageFilter().params.min_score == 0.65


def test_columns_and_types(labeller: LanguageFilter) -> None:
    out = labeller(table([ENGLISH]))
    assert out.schema.field("language.language").type == pa.string()
    assert out.schema.field("language.language_score").type == pa.float64()
    assert "reason" not in out.column_names


def test_common_languages(labeller: LanguageFilter) -> None:
    langs, scores = labels(labeller, [ENGLISH, RUSSIAN, CHINESE, GERMAN])
    assert langs == ["en", "ru", "zh", "de"]
    assert all(s > 0.65 for s in scores)


def test_empty_and_blank_text_is_undetermined(labeller: LanguageFilter) -> None:
    langs, scores = labels(labeller, ["", "   ", "\n\r\n\t"])
    assert langs == [UNDETERMINED] * 3
    assert scores == [0.0] * 3


def test_newlines_are_spaces(labeller: LanguageFilter) -> None:
    flat = "First line of the report. Second line of the report. Third line."
    unix = flat.replace(" Second", "\nSecond").replace(" Third", "\nThird")
    windows = unix.replace("\n", "\r\n")
    langs, scores = labels(labeller, [flat, unix, windows])
    assert langs == ["en"] * 3
    assert scores[1] == pytest.approx(scores[0])
    assert scores[2] == pytest.approx(scores[0])


def test_very_long_line(labeller: LanguageFilter) -> None:
    text = " ".join([ENGLISH] * 20_000)  # ~1.5 MB on one line, not truncated
    langs, scores = labels(labeller, [text])
    assert langs == ["en"]
    assert scores[0] > 0.9


def test_empty_table_keeps_schema() -> None:
    out = LanguageFilter()(table([]))
    assert out.num_rows == 0
    assert out.schema.field("language.language").type == pa.string()
    assert out.schema.field("language.language_score").type == pa.float64()


def test_keep_list_and_min_score() -> None:
    step = LanguageFilter(keep=["en", "de"], min_score=0.65)
    out = step(table([ENGLISH, GERMAN, RUSSIAN, "ok", ""]))
    assert out.column("reason").to_pylist() == [
        None,
        None,
        "language_not_kept",
        "low_language_score",  # fastText: "en" with p ~0.63
        "low_language_score",
    ]


def test_decide_is_threshold_only() -> None:
    step = LanguageFilter(keep=["en"], min_score=0.8)
    signals = {
        "language": np.array(["en", "en", "fr", "fr", UNDETERMINED], dtype=object),
        "language_score": np.array([0.8, 0.79, 0.99, 0.5, 0.0]),
    }
    assert list(step.decide(signals)) == [
        None,
        "low_language_score",
        "language_not_kept",
        "low_language_score",
        "low_language_score",
    ]


def test_keep_none_keeps_everything() -> None:
    out = LanguageFilter(keep=None)(table([ENGLISH, RUSSIAN, "", "ok"]))
    assert "reason" not in out.column_names
    assert out.column("language.language").to_pylist()[:2] == ["en", "ru"]


def test_unknown_keep_code_is_an_error() -> None:
    with pytest.raises(ValidationError, match="eng"):
        LanguageFilter(keep=["eng"])
    with pytest.raises(ValidationError, match="zh-cn"):
        LanguageFilter(keep=["zh-cn"])


def test_label_set_has_176_codes(labeller: LanguageFilter) -> None:
    assert len(LID176_LANGUAGES) == 176
    langs, _ = labels(labeller, [ENGLISH, "佢哋喺度食緊飯，我哋一齊去啦"])
    assert set(langs) <= LID176_LANGUAGES


def test_pickles_without_model() -> None:
    step = LanguageFilter(keep=["ru"])
    step.ensure_setup()
    payload = pickle.dumps(step)
    assert len(payload) < 2_000  # parameters only, never the model
    clone = pickle.loads(payload)
    assert clone.params == step.params
    assert clone(table([RUSSIAN])).column("reason").to_pylist() == [None]


def test_udhr_accuracy(labeller: LanguageFilter) -> None:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    assert len({r["lang"] for r in rows}) == 10
    langs, _ = labels(labeller, [r["text"] for r in rows])
    accuracy = np.mean([p == r["lang"] for p, r in zip(langs, rows, strict=True)])
    assert accuracy >= 0.9
