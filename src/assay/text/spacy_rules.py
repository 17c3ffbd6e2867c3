"""spaCy's English tokenizer rules (spaCy 3.8, ``tokenizer.pyx`` and ``lang/en``) and the
split of one whitespace-separated chunk into words by them.

For each chunk: peel prefixes and suffixes, apply the tokenizer exceptions ("don't" -> "do",
"n't"), keep URLs whole and split infixes; finally re-merge the exceptions that the affix
rules broke apart. The affix, infix and exception tables are spaCy's English ones (MIT
licence, (c) ExplosionAI GmbH); its long Unicode character classes (Latin letters, "other
symbols") are rebuilt from Unicode categories rather than copied.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from itertools import compress, pairwise


def _ranges(codepoints: Iterable[int]) -> str:
    """A regex character-class body (``\\UXXXXXXXX-\\UYYYYYYYY...``) for code points."""
    points = sorted(set(codepoints))
    out: list[str] = []
    i = 0
    while i < len(points):
        j = i
        while j + 1 < len(points) and points[j + 1] == points[j] + 1:
            j += 1
        first, last = points[i], points[j]
        out.append(f"\\U{first:08X}" if first == last else f"\\U{first:08X}-\\U{last:08X}")
        i = j + 1
    return "".join(out)


# The code-point ranges spaCy's char_classes.py calls Latin; spaCy enumerates the lower-
# and upper-case letters of each, here they are selected by Unicode category instead.
_LATIN_SPANS = (
    (0x41, 0x5A), (0x61, 0x7A), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0xC0, 0xD6),
    (0xD8, 0xF6), (0xF8, 0xFF), (0x100, 0x17F), (0x180, 0x1BF), (0x1C4, 0x24F),
    (0x2C60, 0x2C7B), (0x2C7E, 0x2C7F), (0xA722, 0xA76F), (0xA771, 0xA787), (0xA78B, 0xA78E),
    (0xA790, 0xA7B9), (0xA7FA, 0xA7FA), (0xAB30, 0xAB5A), (0xAB60, 0xAB64), (0x250, 0x2AF),
    (0x1D00, 0x1D25), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1EFF),
)  # fmt: skip


def _latin(categories: str | None) -> str:
    points = (c for a, b in _LATIN_SPANS for c in range(a, b + 1))
    if categories is None:
        return _ranges(points)
    return _ranges(c for c in points if unicodedata.category(chr(c)) in categories)


# Scripts spaCy treats as alphabetic but without case (Ethiopic, Bengali, Hebrew, Arabic/
# Persian, Sinhala, Devanagari, Kannada, Tamil, Telugu, Hangul, Kana, CJK).
_UNCASED = (
    r"\u1200-\u137F\u0980-\u09FF\u0591-\u05F4\uFB1D-\uFB4F\u0620-\u064A\u066E-\u06D5"
    r"\u06E5-\u06FF\u0750-\u077F\u08A0-\u08BD\uFB50-\uFBB1\uFBD3-\uFD3D\uFD50-\uFDC7"
    r"\uFDF0-\uFDFB\uFE70-\uFEFC\U0001EE00-\U0001EEBB\u0D80-\u0DFF\u0900-\u097F\u0C80-\u0CFF"
    r"\u0B80-\u0BFF\u0C00-\u0C7F\uAC00-\uD7AF\u1100-\u11FF\u3040-\u309F\u30A0-\u30FFー"
    r"\u4E00-\u9FFF\u3400-\u4DBF\U00020000-\U0002A6DF\U0002A700-\U0002EBEF\u2E80-\u2EFF"
    r"\u2F00-\u2FDF\u2FF0-\u2FFF\u3000-\u303F\u31C0-\u31EF\u3200-\u33FF\uF900-\uFAFF"
    r"\uFE30-\uFE4F\U0001F200-\U0001F2FF\U0002F800-\U0002FA1F"
)
# Russian, Tatar, Greek (monotonic), Ukrainian and Macedonian, as spaCy lists them.
_OTHER_LOWER = "ёа-яәөүҗңһα-ωάέίόώήύа-щюяіїєґѓѕјљњќѐѝ"
_OTHER_UPPER = "ЁА-ЯӘӨҮҖҢҺΑ-ΩΆΈΊΌΏΉΎА-ЩЮЯІЇЄҐЃЅЈЉЊЌЀЍ"

ALPHA_CHARS = _latin(None) + _OTHER_LOWER + _OTHER_UPPER + _UNCASED
ALPHA_LOWER_CHARS = _latin("Ll") + _OTHER_LOWER + _UNCASED
ALPHA_UPPER_CHARS = _latin("Lu") + _OTHER_UPPER + _UNCASED
# spaCy lists the "So" (other symbol) code points of an older Unicode release.
_BMP_AND_SMP = "".join(map(chr, range(0x20000)))
ICON_CHARS = frozenset(  # iterated in C: this runs in every worker process
    compress(_BMP_AND_SMP, map("So".__eq__, map(unicodedata.category, _BMP_AND_SMP)))
)
_ICONS = _ranges(map(ord, ICON_CHARS))

# spaCy's affix tables (``lang/char_classes.py``, ``lang/punctuation.py``), unescaped.
_PUNCT = "… …… , : ; ! ? ¿ ؟ ¡ ( ) [ ] { } < > _ # * & 。 ？ ！ ， 、 ； ： ～ · । ، ۔ ؛ ٪".split()
QUOTES = "' \" ” “ ` ‘ ´ ’ ‚ , „ » « 「 」 『 』 （ ） 〔 〕 【 】 《 》 〈 〉 〈 〉 ⟦ ⟧".split()
_CURRENCY = (
    "$ £ € ¥ ฿ US$ C$ A$ ₽ ﷼ ₴ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ € ₭ ₮ ₯ ₰ ₱ ₲ ₳ ₴ ₵ ₶ ₷ ₸ ₹ ₺ ₻ ₼ ₽ ₾ ₿"
).split()
_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft "
    "kg g mg µg t lb oz m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb "
    "TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм "
    "кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб"  # sic: no space
    "كم كم² كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم غرام جرام جم كغ ملغ كوب اكواب"
).split()

# Prefixes: one of these characters, a run of 2+ dots, "US$", "C$", "A$", or "+" not
# before a digit. Suffixes: one of these characters, a run of 2+ dots, "……", "'s" (and
# variants), a unit, a currency or "+" after a digit, or "." after a lower-case letter, a
# digit or one of a few symbols, after two upper-case letters, or in "°C." and the like.
PREFIX_CHARS = (
    frozenset(["§", "%", "=", "—", "–", *_PUNCT, "…", *QUOTES, *_CURRENCY]) | ICON_CHARS
) - {"……", "US$", "C$", "A$"}
SUFFIX_CHARS = (frozenset([*_PUNCT, "…", *QUOTES, "—", "–"]) | ICON_CHARS) - {"……"}
_SUFFIX_PAIRS = frozenset(["'s", "'S", "’s", "’S", "……"])
AFTER_DIGIT = frozenset([*_UNITS, *_CURRENCY, "+"])
AFTER_DIGIT_MAX = max(map(len, AFTER_DIGIT))
_DIGITS = frozenset("0123456789")
_digit_search = re.compile("[0-9]").search
dot_follows = re.compile(
    "[0-9" + ALPHA_LOWER_CHARS + re.escape("%²-+|()?:" + "".join(_PUNCT) + "".join(QUOTES)) + "]"
).match
_two_upper = re.compile(f"[{ALPHA_UPPER_CHARS}][{ALPHA_UPPER_CHARS}]").match

_HYPHENS = "- – — -- --- —— ~"


def _infixes(alpha: str, lower: str, upper: str, icons: str, quotes: str) -> re.Pattern[str]:
    return re.compile(
        "|".join(
            [
                r"\.\.+",
                "…",
                *([f"[{icons}]"] if icons else []),
                r"(?<=[0-9])[+\-\*^](?=[0-9-])",
                rf"(?<=[{lower}{quotes}])\.(?=[{upper}{quotes}])",
                rf"(?<=[{alpha}]),(?=[{alpha}])",
                rf"(?<=[{alpha}0-9])(?:{_HYPHENS.replace(' ', '|')})(?=[{alpha}])",
                rf"(?<=[{alpha}0-9])[:<>=/](?=[{alpha}])",
            ]
        )
    )


def _ascii_infixes(alpha: str, lower: str, upper: str, quotes: str) -> re.Pattern[str]:
    """``_infixes`` without symbols, rewritten so that every alternative starts with the
    literal it consumes (its look-behind moved after it). Then the regex engine knows
    which characters can start a match and skips the others in C: 2-3x faster."""

    def each(strings: Iterable[str], behind: str, ahead: str) -> list[str]:
        return [rf"{re.escape(s)}(?<=[{behind}]{re.escape(s)})(?=[{ahead}])" for s in strings]

    return re.compile(
        "|".join(
            [
                r"\.\.+",
                "…",
                *each("+-*^", "0-9", "0-9-"),
                *each(".", lower + quotes, upper + quotes),
                *each(",", alpha, alpha),
                *each(_HYPHENS.split(), alpha + "0-9", alpha),
                *each(":<>=/", alpha + "0-9", alpha),
            ]
        )
    )


# The infix rules, and the same restricted to ASCII (much faster on ASCII strings).
_infix_finditer = _infixes(
    ALPHA_CHARS, ALPHA_LOWER_CHARS, ALPHA_UPPER_CHARS, _ICONS, re.escape("".join(QUOTES))
).finditer
_ascii_infix_finditer = _ascii_infixes(
    "A-Za-z", "a-z", "A-Z", re.escape("".join(q for q in QUOTES if q.isascii()))
).finditer
# A character an infix needs (or a symbol); strings without one cannot have an infix.
_infix_char = re.compile(r"[.…,\-–—~:<>=/+*^]").search
_ascii_infix_char = re.compile(r"[.,\-~:<>=/+*^]").search
# What a URL needs: a dot before two lower-case letters (a TLD) or between digits (an IP).
_url_possible = re.compile(rf"\.[{ALPHA_LOWER_CHARS}]{{2}}|[0-9]\.[0-9]").search

# spaCy's URL_MATCH (itself after https://gist.github.com/dperini/729294, MIT licence).
url_match = re.compile(
    r"(?u)^(?:(?:[\w\+\-\.]{2,})://)?(?:\S+(?::\S*)?@)?(?:"
    r"(?!(?:10|127)(?:\.\d{1,3}){3})(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})"
    r"(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})"
    r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
    r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))|"
    r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    r"(?:[" + ALPHA_LOWER_CHARS + r"]{2,63}))(?::\d{2,5})?(?:[/?#]\S*)?$"
).match


def _english_exceptions() -> dict[str, tuple[str, ...]]:
    """spaCy's English tokenizer exceptions (``lang/en/tokenizer_exceptions.py`` plus the
    language-independent ones): each maps a string to the tokens it is split into."""
    exc: dict[str, tuple[str, ...]] = {}
    for orth in (" ", "\t", "\\t", "\n", "\\n", "\u2014", "\u00a0", "'", '\\")', "<space>"):
        exc[orth] = (orth,)
    for orth in ("''", "C++", *(f"{c}." for c in "abcdefghijklmnopqrstuvwxyzäöü")):
        exc[orth] = (orth,)
    emoticons = r"""
        :) :-) :)) :-)) :))) :-))) (: (-: =) (= :] :-] [: [-: [= =] :o) (o: :} :-} 8) 8-) (-8
        ;) ;-) (; (-; :( :-( :(( :-(( :((( :-((( ): )-: =( >:( :') :'-) :'( :'-( :/ :-/ =/ =|
        :| :-| ]= =[ :1 :P :-P :p :-p :O :-O :o :-o :0 :-0 :() >:o :* :-* :3 :-3 =3 :> :-> :X
        :-X :x :-x :D :-D ;D ;-D =D xD XD xDD XDD 8D 8-D ^_^ ^__^ ^___^ >.< >.> <.< ._. ;_;
        -_- -__- v.v V.V v_v V_V o_o o_O O_o O_O 0_o o_0 0_0 o.O O.o O.O o.o 0.0 o.0 0.o @_@
        <3 <33 <333 </3 (^_^) (-_-) (._.) (>_<) (*_*) (¬_¬) ಠ_ಠ ಠ︵ಠ (ಠ_ಠ) ¯\(ツ)/¯
        (╯°□°）╯︵┻━┻ ><(((*>"""
    for orth in emoticons.split():
        exc[orth] = (orth,)
    for u in "cfkCFK":
        exc[f"°{u}."] = ("°", u, ".")

    def both(word: str) -> tuple[str, str]:
        return word, word.title()

    en: dict[str, tuple[str, ...]] = {}
    for orth in both("i"):
        en[orth + "'m"] = (orth, "'m")
        en[orth + "m"] = (orth, "m")
        en[orth + "'ma"] = (orth, "'m", "a")
        en[orth + "ma"] = (orth, "m", "a")
    for pron in ("i", "you", "he", "she", "it", "we", "they"):
        for orth in both(pron):
            for apo in ("'", ""):
                en[f"{orth}{apo}ll"] = (orth, f"{apo}ll")
                en[f"{orth}{apo}ll{apo}ve"] = (orth, f"{apo}ll", f"{apo}ve")
                en[f"{orth}{apo}d"] = (orth, f"{apo}d")
                en[f"{orth}{apo}d{apo}ve"] = (orth, f"{apo}d", f"{apo}ve")
                if pron in ("i", "you", "we", "they"):
                    en[f"{orth}{apo}ve"] = (orth, f"{apo}ve")
                if pron in ("you", "we", "they"):
                    en[f"{orth}{apo}re"] = (orth, f"{apo}re")
                if pron in ("he", "she", "it"):
                    en[f"{orth}{apo}s"] = (orth, f"{apo}s")
    plural, singular = ("these", "those"), ("that", "this")
    for word in ("who", "what", "when", "where", "why", "how", "there", *singular, *plural):
        for orth in both(word):
            if word not in plural:
                en[orth + "'s"] = (orth, "'s")
                en[orth + "s"] = (orth, "s")
            for apo in ("'", ""):
                en[f"{orth}{apo}ll"] = (orth, f"{apo}ll")
                en[f"{orth}{apo}ll{apo}ve"] = (orth, f"{apo}ll", f"{apo}ve")
                if word not in singular:
                    en[f"{orth}{apo}re"] = (orth, f"{apo}re")
                    en[f"{orth}{apo}ve"] = (orth, f"{apo}ve")
                en[f"{orth}{apo}d"] = (orth, f"{apo}d")
                en[f"{orth}{apo}d{apo}ve"] = (orth, f"{apo}d", f"{apo}ve")
    modals = ("ca", "could", "do", "does", "did", "had", "may", "might", "must", "need",
              "ought", "sha", "should", "wo", "would")  # fmt: skip
    for verb in modals:
        for orth in both(verb):
            for apo in ("'", ""):
                en[f"{orth}n{apo}t"] = (orth, f"n{apo}t")
                en[f"{orth}n{apo}t{apo}ve"] = (orth, f"n{apo}t", f"{apo}ve")
    for verb in ("could", "might", "must", "should", "would"):
        for orth in both(verb):
            en[orth + "'ve"] = (orth, "'ve")
            en[orth + "ve"] = (orth, "ve")
    for verb in ("ai", "are", "is", "was", "were", "have", "has", "dare"):
        for orth in both(verb):
            en[orth + "n't"] = (orth, "n't")
            en[orth + "nt"] = (orth, "nt")
    for word in ("doin", "goin", "nothin", "nuthin", "ol", "somethin"):
        for orth in both(word):
            en[orth] = (orth,)
            en[orth + "'"] = (orth + "'",)
    for word in ("em", "ll", "nuff"):
        en[word] = (word,)
        en["'" + word] = ("'" + word,)
    for h in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            en[f"{h}{period}"] = (str(h), period)
    en.update(
        {
            "y'all": ("y'", "all"), "yall": ("y", "all"), "how'd'y": ("how", "'d", "'y"),
            "How'd'y": ("How", "'d", "'y"), "not've": ("not", "'ve"), "notve": ("not", "ve"),
            "Not've": ("Not", "'ve"), "Notve": ("Not", "ve"), "cannot": ("can", "not"),
            "Cannot": ("Can", "not"), "gonna": ("gon", "na"), "Gonna": ("Gon", "na"),
            "gotta": ("got", "ta"), "Gotta": ("Got", "ta"), "let's": ("let", "'s"),
            "Let's": ("Let", "'s"), "c'mon": ("c'm", "on"), "C'mon": ("C'm", "on"),
        }
    )  # fmt: skip
    whole = """
        'S 's \u2018S \u2018s and/or w/o 're 'Cause 'cause 'cos 'Cos 'coz 'Coz 'cuz 'Cuz 'bout
        ma'am Ma'am o'clock O'clock lovin' Lovin' lovin Lovin havin' Havin' havin Havin doin'
        Doin' doin Doin goin' Goin' goin Goin Mt. Ak. Ala. Apr. Ariz. Ark. Aug. Calif. Colo.
        Conn. Dec. Del. Feb. Fla. Ga. Ia. Id. Ill. Ind. Jan. Jul. Jun. Kan. Kans. Ky. La. Mar.
        Mass. Mich. Minn. Miss. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Nov. Oct. Okla.
        Ore. Pa. S.C. Sep. Sept. Tenn. Va. Wash. Wis. 'd a.m. Adm. Bros. co. Co. Corp. D.C.
        Dr. e.g. E.g. E.G. Gen. Gov. i.e. I.e. I.E. Inc. Jr. Ltd. Md. Messrs. Mo. Mont. Mr.
        Mrs. Ms. p.m. Ph.D. Prof. Rep. Rev. Sen. St. vs. v.s."""
    for orth in whole.split():
        en[orth] = (orth,)
    for orth in ("Ill ill Its its Hell hell Shell shell Shed shed were Were Well well Whore "
                 "whore").split():  # fmt: skip
        en.pop(orth, None)
    exc.update(en)
    # spaCy adds a variant with the typographic apostrophe of every exception.
    for orth, tokens in list(exc.items()):
        if "'" in orth:
            exc[orth.replace("'", "’")] = tuple(t.replace("'", "’") for t in tokens)
    return exc


EXCEPTIONS = _english_exceptions()


def _find_prefix(string: str) -> int:
    """Length of the prefix spaCy's English rules split off ``string`` (0 if none)."""
    first = string[0]
    if first in PREFIX_CHARS:
        return 1
    if first == ".":
        dots = len(string) - len(string.lstrip("."))
        return dots if dots > 1 else 0
    if first == "+":
        return 0 if string[1:2] in _DIGITS else 1
    if first in "UCA" and "$" in string[:3]:
        if string.startswith("US$"):
            return 3
        if string.startswith(("C$", "A$")):
            return 2
    return 0


def _find_suffix(string: str) -> int:
    """Length of the suffix spaCy's English rules split off ``string`` (0 if none).

    spaCy takes the leftmost match of its suffix patterns, all anchored at the end, so
    the longest one.
    """
    n = len(string)
    if not n:
        return 0
    last = string[-1]
    if last == ".":
        dots = n - len(string.rstrip("."))
        if dots > 1:
            return dots
        if n > 1 and dot_follows(string, n - 2):
            return 1
        if n > 2 and (_two_upper(string, n - 3) or (string[-3] == "°" and string[-2] in "FfCcKk")):
            return 1
        return 0
    best = 1 if last in SUFFIX_CHARS else 0
    if n > 1 and string[-2:] in _SUFFIX_PAIRS:
        best = 2
    # A unit, currency or "+" right after a digit: try each digit near the end, leftmost
    # (longest suffix) first. Most strings have no digit there: one search.
    digit = _digit_search(string, max(0, n - AFTER_DIGIT_MAX - 1), n - 1)
    while digit is not None:
        at = digit.start()
        if n - at - 1 <= best:
            break
        if string[at + 1 :] in AFTER_DIGIT:
            return n - at - 1
        digit = _digit_search(string, at + 1, n - 1)
    return best


def _split_chunk(chunk: str, specials: bool = True) -> list[str]:
    """spaCy's ``_split_affixes`` + ``_attach_tokens`` for one whitespace-free chunk."""
    exceptions = EXCEPTIONS if specials else {}
    if chunk in exceptions:
        return list(exceptions[chunk])
    prefixes: list[str] = []
    suffixes: list[str] = []
    string = chunk
    last_size = 0
    while string and len(string) != last_size:
        if string in exceptions:
            break
        last_size = len(string)
        pre_len = _find_prefix(string)
        if pre_len:
            prefix, minus_pre = string[:pre_len], string[pre_len:]
            if minus_pre and minus_pre in exceptions:
                string = minus_pre
                prefixes.append(prefix)
                break
        suf_len = _find_suffix(string[pre_len:])
        if suf_len:
            suffix, minus_suf = string[-suf_len:], string[:-suf_len]
            if minus_suf and minus_suf in exceptions:
                string = minus_suf
                suffixes.append(suffix)
                break
        if pre_len and suf_len and pre_len + suf_len <= len(string):
            string = string[pre_len:-suf_len]
            prefixes.append(prefix)
            suffixes.append(suffix)
        elif pre_len:
            string = minus_pre
            prefixes.append(prefix)
        elif suf_len:
            string = minus_suf
            suffixes.append(suffix)
    tokens = prefixes
    if string:
        ascii = string.isascii()
        if string in exceptions:
            tokens.extend(exceptions[string])
        elif (
            not (_ascii_infix_char(string) if ascii else _infix_char(string))
            and (ascii or ICON_CHARS.isdisjoint(string))
        ) or (_url_possible(string) and url_match(string)):
            tokens.append(string)
        else:
            start = 0
            for match in (_ascii_infix_finditer if ascii else _infix_finditer)(string):
                infix_start, infix_end = match.span()
                if infix_start == 0:
                    continue
                if infix_start != start:
                    tokens.append(string[start:infix_start])
                if infix_start != infix_end:
                    tokens.append(string[infix_start:infix_end])
                start = infix_end
            if string[start:]:
                tokens.append(string[start:])
    tokens.extend(reversed(suffixes))
    return tokens


def _merge_patterns() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """Exceptions that the affix rules split, keyed by their first piece (spaCy re-merges
    them with a phrase matcher after tokenizing)."""
    patterns: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for orth in EXCEPTIONS:
        if orth.isspace():
            continue
        if _find_prefix(orth) or _find_suffix(orth) or any(True for _ in _infix_finditer(orth)):
            pieces = tuple(_split_chunk(orth, specials=False))
            if len(pieces) > 1:
                patterns.setdefault(pieces[0], []).append((pieces, orth))
    return patterns


_MERGE = _merge_patterns()
MERGE_PAIRS = frozenset(pieces[:2] for patterns in _MERGE.values() for pieces, _ in patterns)


def _merge_exceptions(tokens: list[str]) -> list[str]:
    """spaCy's ``_apply_special_cases`` on the tokens of one chunk."""
    matches = []
    for i, token in enumerate(tokens):
        for pieces, orth in _MERGE.get(token, ()):
            if tuple(tokens[i : i + len(pieces)]) == pieces:
                matches.append((i, i + len(pieces), orth))
    if not matches:
        return tokens
    # Longest first, then leftmost; a match is dropped if its ends overlap a kept one.
    matches.sort(key=lambda m: (m[0] - m[1], m[0]))
    seen: set[int] = set()
    kept = []
    for start, end, orth in matches:
        if start not in seen and end - 1 not in seen:
            kept.append((start, end, orth))
        seen.update(range(start, end))
    out: list[str] = []
    i = 0
    for start, end, orth in sorted(kept):
        out.extend(tokens[i:start])
        out.extend(EXCEPTIONS[orth])
        i = end
    out.extend(tokens[i:])
    return out


def _plain(core: str) -> bool:
    """No rule splits ``core``: letters, or letters and digits without a unit at the end."""
    return core.isalpha() or (core.isalnum() and not _find_suffix(core))


def _split_simple(chunk: str) -> list[str] | None:
    """Shortcut of ``_split_chunk`` for a chunk that is not an exception and is letters or
    digits with at most one affix character on either side (two thirds of the distinct
    chunks of web text); None for any other chunk."""
    if chunk.isalnum():
        return [chunk] if _plain(chunk) else None
    if len(chunk) < 2 or _find_prefix(chunk) > 1:
        return None
    first = chunk[0]
    if first in PREFIX_CHARS and _plain(chunk[1:]):  # "(word"
        core = chunk[1:]
        return [first, *EXCEPTIONS.get(core, (core,))]
    if _find_suffix(chunk) != 1:
        return None
    if _plain(chunk[:-1]):  # "word,"
        core = chunk[:-1]
        return [*EXCEPTIONS.get(core, (core,)), chunk[-1]]
    if len(chunk) > 2 and first in PREFIX_CHARS and _plain(chunk[1:-1]):  # "(word)"
        if chunk[1:] in EXCEPTIONS or chunk[:-1] in EXCEPTIONS:
            return None
        core = chunk[1:-1]
        return [first, *EXCEPTIONS.get(core, (core,)), chunk[-1]]
    return None


def split_chunk(chunk: str) -> list[str]:
    """The spaCy English tokens of one whitespace-free chunk of text."""
    if chunk in EXCEPTIONS:
        return list(EXCEPTIONS[chunk])
    # Every chunk the shortcut takes is letters or digits but for its first and last
    # character: skip it at once for the others (most chunks that get here).
    tokens = _split_simple(chunk) if len(chunk) < 3 or chunk[1:-1].isalnum() else None
    if tokens is None:
        tokens = _split_chunk(chunk)
    if len(tokens) > 1 and not MERGE_PAIRS.isdisjoint(pairwise(tokens)):
        tokens = _merge_exceptions(tokens)
    return tokens


def is_punct(token: str) -> bool:
    """spaCy's ``Token.is_punct``: every character is Unicode punctuation (P*)."""
    return all(unicodedata.category(ch)[0] == "P" for ch in token)
