"""Rubrics for ``llm_rate``: a prompt and how to read scores out of the answer, as data.

assay ships the published ones (``prompts/*.yaml``: FineWeb-Edu's additive 0-5 educational
score, DataMan's 14 criteria and domain); a user's own rubric is a YAML file of the same
shape:

    name: my_rubric
    cite: where the prompt comes from
    system: optional system prompt
    prompt: "... {text} ..."         # {text}: the document, cut to max_chars
    max_chars: 8000
    scores:                          # numeric criteria, each read by its pattern
      score: {min: 0, max: 5, pattern: 'Score:\\s*(\\d+)'}
    labels:                          # categorical answers (e.g. a domain), optional
      domain: {pattern: 'Domain:\\s*(\\w+)', choices: {A: Medicine, B: Finance}}

A score's pattern is a regular expression whose first group is the number; where it does
not match, a rubric with one score falls back to a number the answer's last line ends on
(small models often drop the label; a number inside a justification cut short by
``max_tokens`` is no score), and a rubric with several to ``NAME: number`` lines. The names
``answer`` and ``error`` are the step's own signals, and a name is a score or a label, not
both.
A label's value is matched to its choices ignoring case and punctuation.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay.steps.base import StepError

# A number the answer ends on ("3", "Score: 3.", "**4/5**"), trailing marks aside.
_ENDS_ON_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:/\s*\d+)?[\s*.)\]]*\Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreSpec(_Strict):
    min: float
    max: float
    pattern: str | None = None


class LabelSpec(_Strict):
    pattern: str
    # The allowed values, or {what the answer says: the value stored} (e.g. A: Medicine).
    choices: list[str] | dict[str, str] = Field(default_factory=list)


class Rubric(_Strict):
    name: str
    cite: str = ""
    system: str | None = None
    prompt: str
    max_chars: int = Field(20_000, ge=100)
    scores: dict[str, ScoreSpec]
    labels: dict[str, LabelSpec] = Field(default_factory=dict)

    def messages(self, text: str) -> list[dict[str, str]]:
        body = self.prompt.replace("{text}", text[: self.max_chars])
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": body}]

    def parse(self, answer: str) -> tuple[dict[str, float], dict[str, str]] | None:
        """Every score (and label) read from ``answer``, or None if any score is missing."""
        scores: dict[str, float] = {}
        for name, spec in self.scores.items():
            value = _read_score(answer, name, spec, alone=len(self.scores) == 1)
            if value is None:
                return None
            scores[name] = value
        labels = {name: _read_label(answer, spec) for name, spec in self.labels.items()}
        return scores, {k: v for k, v in labels.items() if v is not None}


def _in_range(text: str, spec: ScoreSpec) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if spec.min <= value <= spec.max else None


def _read_score(answer: str, name: str, spec: ScoreSpec, alone: bool) -> float | None:
    if spec.pattern:
        found = re.findall(spec.pattern, answer, flags=re.IGNORECASE)
        for hit in reversed(found):  # the last one: models restate the format before answering
            value = _in_range(hit if isinstance(hit, str) else hit[0], spec)
            if value is not None:
                return value
    if alone:  # only a number the answer ends on: one inside a cut-off justification is no score
        last = _ENDS_ON_NUMBER.search(answer)
        return _in_range(last.group(1), spec) if last else None
    label = re.escape(name).replace(r"\_", r"[_ ]")
    named = re.findall(rf"{label}\W{{0,5}}(\d+(?:\.\d+)?)", answer, flags=re.IGNORECASE)
    return next((v for v in (_in_range(h, spec) for h in reversed(named)) if v is not None), None)


def _squash(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text).strip().lower()


def _read_label(answer: str, spec: LabelSpec) -> str | None:
    hit = re.search(spec.pattern, answer, flags=re.IGNORECASE)
    if hit is None:
        return None
    value = hit.group(1).strip()
    if not spec.choices:
        return value[:200]
    choices = spec.choices if isinstance(spec.choices, dict) else {c: c for c in spec.choices}
    wanted = _squash(value)
    for said, stored in choices.items():
        if _squash(said) == wanted or wanted.startswith(_squash(said) + " "):
            return stored
    return None


SHIPPED = ("fineweb_edu", "dataman")


@cache
def load_rubric(name_or_path: str) -> Rubric:
    """A shipped rubric by name, or a user's rubric from a YAML file."""
    if name_or_path in SHIPPED:
        text = resources.files("assay.steps.llm").joinpath(f"prompts/{name_or_path}.yaml").read_text("utf-8")
        where = f"rubric {name_or_path}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise StepError(f"llm_rate: rubric {name_or_path!r} is neither a shipped rubric "
                            f"({', '.join(SHIPPED)}) nor a YAML file")
        text, where = path.read_text("utf-8"), str(path)
    try:
        data = yaml.safe_load(text)
        rubric = Rubric.model_validate(data)
        for spec in [*rubric.scores.values(), *rubric.labels.values()]:
            if spec.pattern:
                re.compile(spec.pattern)
    except (yaml.YAMLError, ValidationError, re.error) as exc:
        raise StepError(f"{where}: not a valid rubric: {' '.join(str(exc).split())[:300]}") from None
    names = [*rubric.scores, *rubric.labels]
    clashes = sorted({n for n in names if names.count(n) > 1} | ({"answer", "error"} & set(names)))
    if clashes:
        raise StepError(f"{where}: {', '.join(clashes)}: a score or label name used twice, or one of "
                        "the step's own signals (answer, error)")
    if "{text}" not in rubric.prompt:
        raise StepError(f"{where}: the prompt has no {{text}} placeholder for the document")
    return rubric
