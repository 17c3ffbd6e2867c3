"""Main-text extraction from HTML: the first step of a web corpus."""

from __future__ import annotations

import html as html_lib
import re
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from assay.steps.base import DocumentStep, StepOutput, StepParams, register

NOT_HTML = "not_html"
NO_MAIN_TEXT = "no_main_text"
EXTRACTION_ERROR = "extraction_error"
EXTRACTION_TIMEOUT = "extraction_timeout"

# A document is treated as HTML when a tag opens in its first 64 KB.
_TAG = re.compile(
    r"<(?:!doctype|html|head|body|div|p|span|table|article|main|section|a|h[1-6]|br|meta|title)\b",
    re.IGNORECASE,
)
# The bodies stop at the next opening or closing tag of the same kind, so a page full of
# unclosed tags costs linear, not quadratic, time.
_MATHJAX_SCRIPT = re.compile(
    r"<script[^>]*type\s*=\s*[\"']?math/tex(?P<display>\s*;\s*mode\s*=\s*display)?[\"']?[^>]*>"
    r"(?P<tex>[^<]*(?:<(?!/?script\b)[^<]*)*)</script>",
    re.IGNORECASE,
)
_MATHML = re.compile(r"<math\b[^>]*>[^<]*(?:<(?!/?math\b)[^<]*)*</math>", re.IGNORECASE)
_MATH_HINT = re.compile(r"math/tex|<math\b", re.IGNORECASE)


def _may_hold_math(page: str) -> bool:
    # Plain substring tests first (each far cheaper than a case-blind regex over the page);
    # the regex then confirms. "<Math" and mixed-case attributes are left to the extractor.
    return ("<math" in page or "math/tex" in page or "<MATH" in page) and bool(_MATH_HINT.search(page))


def _may_contain(page: str, word: str) -> bool:
    """Whether ``word`` may occur in ``page`` in any case: a plain substring test for the
    usual spellings (fast), so the case-blind regex only runs on pages that may match."""
    return word in page or word.upper() in page or word.capitalize() in page
_TEX_ANNOTATION = re.compile(
    r"<annotation[^>]*encoding\s*=\s*[\"']application/x-tex[\"'][^>]*>(.*?)</annotation>",
    re.IGNORECASE | re.DOTALL,
)


class ExtractHtmlParams(StepParams):
    extractor: Literal["trafilatura", "resiliparse"] = Field(
        "trafilatura", description="trafilatura (best F1) or resiliparse (several times faster)")
    output_format: Literal["txt", "markdown"] = Field(
        "txt", description="plain text, or Markdown (headings, lists, code fences; trafilatura only)")
    favor: Literal["balanced", "precision", "recall"] = Field(
        "balanced", description="trafilatura's trade-off between boilerplate kept and text lost")
    tables: bool = Field(True, description="keep the text of tables")
    links: bool = Field(False, description="keep link targets (Markdown output with trafilatura)")
    comments: bool = Field(False, description="keep user comments below the main text (trafilatura)")
    math: bool = Field(True, description="keep MathML and MathJax formulas as LaTeX text, \\(...\\)")
    code: bool = Field(True, description="keep <pre> and <code> blocks")
    timeout_s: float | None = Field(
        None, gt=0, description="give up on one page after this many seconds (reason extraction_timeout); "
        "off by default because a timeout makes the output depend on the machine")

    @model_validator(mode="after")
    def _check(self) -> ExtractHtmlParams:
        if self.extractor == "resiliparse":
            if self.output_format != "txt":
                raise ValueError("resiliparse writes plain text only: set output_format: txt")
            if self.favor != "balanced" or self.comments:
                raise ValueError("favor and comments are trafilatura settings; resiliparse has none")
        elif self.links and self.output_format != "markdown":
            raise ValueError("links: true needs output_format: markdown (plain text has no link targets)")
        return self


@register
class ExtractHtml(DocumentStep):
    """Replace an HTML page by its main text (the transform every web corpus starts with).

    FineWeb (Penedo et al. 2024, section 3.2) found that main text extracted from WARC
    HTML with trafilatura gives better models than Common Crawl's WET text; this is that
    step. ``extractor: trafilatura`` (Barbaresi 2021) is the default; ``resiliparse``
    (Bevendorff et al. 2018, the extractor of DCLM's pool) is faster and less precise.
    ``bench/extract.py`` reports both against gold main text.

    Options: ``tables``, ``links`` (Markdown output), ``comments``, ``code`` blocks, and
    ``math``: MathML with a TeX annotation and MathJax ``math/tex`` scripts become LaTeX
    text (``\\(x^2\\)``, ``\\[...\\]`` for display), as math corpora need (OpenWebMath,
    Paster et al. 2023). Signals: ``html_chars``, ``text_chars`` and ``failure`` (the
    reason, or null). A document with no HTML tag is rejected as ``not_html``, a page with
    no main text as ``no_main_text``, a page the extractor fails on as ``extraction_error``.
    The extractor's version is in the run manifest's ``versions``.
    """

    name: ClassVar[str] = "extract_html"
    kind: ClassVar[str] = "transform"
    Params: ClassVar[type[StepParams]] = ExtractHtmlParams
    signal_types: ClassVar[dict[str, pa.DataType]] = {
        "html_chars": pa.int64(), "text_chars": pa.int64(), "failure": pa.string(),
    }

    def setup(self) -> None:
        try:
            self._extract = make_extractor(self.params)
        except ImportError as exc:
            raise ImportError(f"extract_html needs the web extra (pip install 'assay[web]'): {exc}") from None

    def compute(self, texts: list[str]) -> StepOutput:
        out_texts: list[str] = []
        failures: list[str | None] = []
        text_chars = np.zeros(len(texts), dtype=np.int64)
        for i, page in enumerate(texts):
            reason, text = None, page
            if not _TAG.search(page, 0, 65536):
                reason = NOT_HTML
            else:
                try:
                    with _deadline(self.params.timeout_s):
                        extracted = self._extract(page)
                except _Timeout:
                    reason = EXTRACTION_TIMEOUT
                except Exception:
                    reason = EXTRACTION_ERROR
                else:
                    extracted = (extracted or "").strip()
                    if extracted:
                        text = extracted
                        text_chars[i] = len(extracted)
                    else:
                        reason = NO_MAIN_TEXT
            out_texts.append(text)
            failures.append(reason)
        html_chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        return StepOutput({"html_chars": html_chars, "text_chars": text_chars, "failure": failures},
                          texts=out_texts)

    def decide(self, signals: dict[str, np.ndarray]) -> np.ndarray | None:
        # Extraction either worked or failed for a recorded reason; there is no threshold.
        return np.asarray(signals["failure"], dtype=object)


def make_extractor(params: ExtractHtmlParams) -> Callable[[str], str | None]:
    """A function from one HTML page to its main text (None or empty when there is none)."""
    prepare = _math_to_tex if params.math else _drop_math
    if params.extractor == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text

        skip = [*([] if params.tables else ["table"]), *([] if params.code else ["pre", "code"])]

        def resiliparse_text(page: str) -> str | None:
            return extract_plain_text(prepare(page), main_content=True, links=params.links,
                                      alt_texts=False, skip_elements=skip or None)

        return resiliparse_text

    import trafilatura

    options: dict[str, Any] = dict(
        output_format=params.output_format, include_tables=params.tables, include_links=params.links,
        include_comments=params.comments, include_images=False, favor_precision=params.favor == "precision",
        favor_recall=params.favor == "recall", deduplicate=False, with_metadata=False,
    )

    def trafilatura_text(page: str) -> str | None:
        page = prepare(page)
        if not params.code:
            page = _drop_code(page)
        return trafilatura.extract(page, **options)

    return trafilatura_text


def _math_to_tex(page: str) -> str:
    """MathJax scripts and annotated MathML as escaped LaTeX text the extractors keep."""
    if _may_hold_math(page):
        page = _MATHML.sub(_mathml_span, _MATHJAX_SCRIPT.sub(_mathjax_span, page))
    return page


def _mathjax_span(match: re.Match[str]) -> str:
    tex = match.group("tex").strip()
    open_, close = ("\\[", "\\]") if match.group("display") else ("\\(", "\\)")
    return f"<span>{html_lib.escape(open_ + tex + close, quote=False)}</span>"


def _mathml_span(match: re.Match[str]) -> str:
    annotation = _TEX_ANNOTATION.search(match.group(0))
    if annotation is None:
        return match.group(0)  # no TeX source: leave it to the extractor
    tex = html_lib.unescape(annotation.group(1)).strip()
    return "<span>" + html_lib.escape("\\(" + tex + "\\)", quote=False) + "</span>"


def _drop_math(page: str) -> str:
    if _may_hold_math(page):
        page = _MATHML.sub("", _MATHJAX_SCRIPT.sub("", page))
    return page


_CODE_BLOCK = re.compile(
    r"<(pre|code)\b[^>]*>[^<]*(?:<(?!/?(?:pre|code)\b)[^<]*)*</\1\s*>", re.IGNORECASE
)


def _drop_code(page: str) -> str:
    if _may_contain(page, "<pre") or _may_contain(page, "<code"):
        return _CODE_BLOCK.sub("", page)
    return page


class _Timeout(BaseException):
    """Not an Exception, so the extractors' own ``except Exception`` fallbacks cannot swallow
    it and return a partial text as a success."""


@contextmanager
def _deadline(seconds: float | None):  # type: ignore[no-untyped-def]
    """Raise :class:`_Timeout` inside the block after ``seconds`` (main thread only)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
