"""Reading scores out of answers: the shipped rubrics' patterns, their fallbacks, and what
a rubric file may not be."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.steps.base import StepError
from assay.steps.llm.rubrics import load_rubric


def test_fineweb_edu_scores_and_what_is_no_score() -> None:
    rubric = load_rubric("fineweb_edu")
    assert rubric.parse("Useful basics.\nEducational score:  3") == ({"score": 3.0}, {})
    # The last of several (models restate the format first), within 0..5.
    restated = 'Use "Educational score:  <total points>".\nEducational score: 4'
    assert rubric.parse(restated)[0] == {"score": 4.0}
    assert rubric.parse("Educational score: 100") is None
    assert rubric.parse("Points: 1 + 1.\n\n2") == ({"score": 2.0}, {})  # the answer ends on a number
    assert rubric.parse("Total: **4/5**") == ({"score": 4.0}, {})
    # A justification cut short by max_tokens holds numbers, but no score.
    assert rubric.parse("The extract suits grade 5 students and meets the first 2 criteria, but it") is None
    assert rubric.parse("") is None


def test_dataman_reads_fourteen_scores_and_a_domain() -> None:
    rubric = load_rubric("dataman")
    lines = "\n".join(f"[{k}] Criterion {k}: {1 + k % 5}/5" for k in range(1, 15))
    scores, labels = rubric.parse(f"Let me think.\nDomain Type: [H] Coding\n{lines}")
    assert len(scores) == 14 and scores["accuracy"] == 2.0 and scores["overall_score"] == 5.0
    assert labels == {"domain": "Coding"}
    assert rubric.parse(lines.replace("[7] Criterion 7: 3/5", "[7] Criterion 7: n/a")) is None


def test_a_rubric_file_is_checked(tmp_path: Path) -> None:
    def rubric(body: str) -> Path:
        path = tmp_path / f"r{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(body)
        return path

    good = rubric("name: r\nprompt: 'Rate {text}'\nscores: {s: {min: 1, max: 3}}\n")
    assert load_rubric(str(good)).parse("s: 2") == ({"s": 2.0}, {})
    with pytest.raises(StepError, match="no \\{text\\} placeholder"):
        load_rubric(str(rubric("name: r\nprompt: 'Rate it'\nscores: {s: {min: 1, max: 3}}\n")))
    with pytest.raises(StepError, match="answer: a score or label name used twice"):
        load_rubric(str(rubric("name: r\nprompt: '{text}'\nscores: {answer: {min: 1, max: 3}}\n")))
    with pytest.raises(StepError, match="not a valid rubric"):
        load_rubric(str(rubric("name: r\nprompt: '{text}'\nscores: {s: {min: 1, max: 3, pattern: '('}}\n")))
    with pytest.raises(StepError, match="neither a shipped rubric"):
        load_rubric(str(tmp_path / "missing.yaml"))
