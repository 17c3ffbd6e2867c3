"""Personal data: e-mail addresses, public IP addresses, phone numbers, payment cards and
IBANs, found in the text and replaced by placeholders or salted hashes."""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from assay.steps.base import DocumentStep, StepError, StepOutput, StepParams, register

PiiType = Literal["email", "ip", "phone", "credit_card", "iban"]
# Every type, in the order detections claim text: where two overlap, the earlier type wins.
PII_TYPES: tuple[PiiType, ...] = ("email", "ip", "iban", "credit_card", "phone")
DEFAULT_PLACEHOLDERS: Mapping[PiiType, str] = {
    "email": "<EMAIL>",
    "ip": "<IP_ADDRESS>",
    "phone": "<PHONE>",
    "credit_card": "<CREDIT_CARD>",
    "iban": "<IBAN>",
}
CHARS_REPLACED = "chars_replaced"
PhoneLeniency = Literal["possible", "valid", "strict_grouping", "exact_grouping"]

# -- e-mail ------------------------------------------------------------------------------
# FineWeb's pattern (datatrove's PIIFormatter, after RFC 5322's dot-atom), matched around each
# "@": a local part of at most 64 characters that starts with a letter, digit or "_" (as
# FineWeb's leading \b does: "'ann@x.org'" gives "ann@x.org", a decorator "`@app.route"
# nothing) and has no "/", "=", "?" or "&" (so a URL's path or query is not taken in), and a
# domain whose top-level label is letters (or punycode).
_ATEXT = r"A-Za-z0-9!#$%'*+^_`{|}~-"
_LOCAL = re.compile(rf"(?<![.{_ATEXT}])[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_LOCAL_LEAD = re.compile(r"[^A-Za-z0-9_]*")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})\b"
)
# Endings that are file types or systemd units, not top-level domains: "logo@2x.png",
# "getty@tty1.service", "@args.txt".
_NOT_TLDS = frozenset(
    "png jpg jpeg gif svg webp bmp ico tif tiff txt json yaml yml html htm php xml log conf "
    "cfg ini service socket target timer mount automount slice scope swap device path "
    "journal".split()
)

# -- IP addresses ------------------------------------------------------------------------
# Found from their last three numbers (a dot is cheap to look for), then the first one; a
# dotted number of five or more parts is a version (1.2.3.4.5), and one followed by a name
# is a host name ("1.0.0.127.in-addr.arpa").
_IPV4_TAIL = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?!\w|\.\w)")
_IPV4_HEAD = re.compile(r"(?<![\w.])[0-9]{1,3}\Z")
# Section numbers: a heading ("12.2.2.2. Title" at the start of a line) or a cross-reference
# (a dash after, "see 11.7.3.1 – Title"; a no-break space or the Japanese and Chinese "第"
# before).
_HEADING_AFTER = re.compile(r"\.(?:\s|\Z)")
_XREF_AFTER = re.compile(r"\s?[–—]")
_XREF_BEFORE = re.compile(r"(?:\u00a0|第\s?)\Z")
_ADDRESS_BEFORE = re.compile(r"(?i)\b(?:ip|ipv4|address|addr|host|server|dns|ping)\b")
# Words before a dotted number that make it a version or a section, not an address; and a
# product before a slash, as in user agents ("Firefox/2.0.0.11").
_NUMBERING_BEFORE = re.compile(
    r"(?i)(?:\b(?:v|version|ver|revision|rev|release|build|section|chapter|figure|table)\.?"
    r"|§|[a-z]/)[ \t\u00a0]*\Z"
)
# IPv6 is looked for where a colon is followed by a hex digit or another colon.
_COLON = re.compile(r":[0-9A-Fa-f:]")
_HEX_RUN_START = re.compile(r"[0-9A-Fa-f:]*\Z")
_HEX_RUN = re.compile(r"[0-9A-Fa-f:]*")
_H16 = r"[0-9A-Fa-f]{1,4}"
_IPV6 = re.compile(
    rf"(?<![\w:.])(?:(?:{_H16}:){{7}}{_H16}"
    rf"|(?:{_H16}(?::{_H16}){{0,6}})?::(?:{_H16}(?::{_H16}){{0,6}})?)(?![\w:]|\.[0-9])"
)
# The only IPv6 block IANA has allocated for global unicast; outside it "cafe::1" or
# "a::b" are names in code, not addresses.
_IPV6_UNICAST = ipaddress.IPv6Network("2000::/3")

# -- IBAN --------------------------------------------------------------------------------
# ISO 13616 registry (SWIFT, release 2024): country -> length of the whole IBAN.
IBAN_LENGTHS: Mapping[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
# Country code and check digits, then the rest written whole or in groups of four separated
# by single spaces (the last one shorter).
_IBAN = re.compile(
    r"[A-Z](?<!\w[A-Z])[A-Z][0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b"
)

# -- payment cards and phone numbers ------------------------------------------------------
# Both are looked for in runs of ASCII digits and the separators numbers are written with.
_DIGIT_RUN = re.compile(r"[0-9](?<![0-9][0-9])[0-9 \u00a0().\-/]{4,}[0-9]")
# 13 to 19 digits written whole, or in the groups printed on cards: 4-4-4-4(-3) (Visa,
# Mastercard, Discover, JCB, UnionPay...), 4-6-5 (American Express), 4-6-4 (Diners), with one
# space or hyphen, the same one throughout.
_CARD = re.compile(
    r"[0-9](?<![\w+.,/-][0-9])(?:[0-9]{12,18}|[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}"
    r"(?:\1[0-9]{3})?|[0-9]{3}([ -])[0-9]{6}\2[0-9]{4,5})(?![\w/-]|[.,][0-9])"
)
# Issuer identification number ranges (ISO/IEC 7812-1, as the networks publish them) and
# the card lengths each issues: (first digits low, high, lengths).
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({16, 19})),  # Visa (13-digit cards are no longer issued)
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (3095, 3095, frozenset(range(14, 20))),
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(16, 20))),
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (2200, 2204, frozenset(range(16, 20))),  # Mir
    (5018, 5018, frozenset(range(16, 20))),  # Maestro
    (5020, 5020, frozenset(range(16, 20))),
    (5038, 5038, frozenset(range(16, 20))),
    (5893, 5893, frozenset(range(16, 20))),
    (6304, 6304, frozenset(range(16, 20))),
    (6759, 6759, frozenset(range(16, 20))),
    (6761, 6763, frozenset(range(16, 20))),
)
_PHONE_KEYWORD = re.compile(
    r"(?i)\b(?:tel|phone|fax|mobile|cell|call|telefon|telefono|téléphone|tél|handy|mobil"
    r"|whatsapp|sms)"
)
# Runs holding a date (2024-01-15, 15.01.2024, 01/15/2024) or a range ("0.29..14.48"), or
# that are a decimal (3.14159265) or a number with thousands separators (1.234.567).
_NOT_PHONE = re.compile(
    r"(?<![0-9])(?:[0-9]{4}([-./])[0-9]{1,2}\1[0-9]{1,2}|[0-9]{1,2}([-./])[0-9]{1,2}\2[0-9]{4})"
    r"(?![0-9])|^\(?[0-9]+\.[0-9]+\)?$|^[0-9]{1,3}(?:\.[0-9]{3})+$|\.\."
)
_DIGITS = re.compile(r"[0-9]+")
# North American numbers: (202) 555-0143, 202-555-0143, 202.555.0143, 1 800 555 0199.
_NANP = re.compile(r"(?:1[ .-]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[ ./-])[0-9]{3}[ .-][0-9]{4}")
# A US ZIP+4 code after a state: "Boston, MA 02110-1301".
_ZIP = re.compile(r"[0-9]{5}-[0-9]{4}")
_STATE_BEFORE = re.compile(r"\b[A-Z]{2},?\s+\Z")
# Book and serial numbers: "ISBN 0-306-40615-2", "ISSN 0954-0636".
_SERIAL_BEFORE = re.compile(r"(?i)\bIS[BS]N(?:-1[03])?[\s:]*\Z")
_ISBN_SHAPE = re.compile(r"(?:97[89][- ])?[0-9]{1,5}[- ][0-9]{1,7}[- ][0-9]{1,7}[- ][0-9X]")
# The parts of a digit run between double spaces (the columns of a table).
_RUN_PIECE = re.compile(r"[0-9(](?:[^ ]| (?! ))*")


@dataclass(frozen=True)
class Detection:
    """One piece of personal data: ``text[start:end]`` and its normal form (the hashed value)."""

    start: int
    end: int
    kind: PiiType
    value: str


class PiiParams(StepParams):
    """What to find and how to replace it (see :class:`Pii`)."""

    # The types to find; the others are left in the text (their counts stay 0).
    types: tuple[PiiType, ...] = PII_TYPES
    # "placeholder": every value of a type becomes the same placeholder; "hash": the
    # placeholder carries a salted hash of the value, "<EMAIL:9f3a1c2b>".
    mode: Literal["placeholder", "hash"] = "placeholder"
    # Per-type replacements; types not named keep their default.
    placeholders: dict[PiiType, str] = Field(default_factory=lambda: dict(DEFAULT_PLACEHOLDERS))
    # The key of the hash (hash mode needs one: ``salt`` or ``salt_env``, not both). ``salt``
    # is written to the run's manifest like every parameter; ``salt_env`` names an
    # environment variable that holds it, so the manifest records only the name.
    salt: str = ""
    salt_env: str | None = None
    # Hex digits of the hash kept in the token (4 hex digits = 16 bits).
    hash_chars: int = Field(8, ge=4, le=64)
    # Replace only globally reachable addresses (FineWeb's default); False replaces every
    # valid address, private and loopback ones too.
    public_ips_only: bool = True
    # Regions (ISO 3166 codes) whose national formats are recognised, tried in this order;
    # numbers written in international format ("+49 30 901820") are found whatever the list.
    regions: tuple[str, ...] = ("US", "GB", "DE", "FR")
    # libphonenumber's leniency: how strictly a candidate must be a valid, well-grouped number.
    phone_leniency: PhoneLeniency = "valid"

    @field_validator("types", mode="after")
    @classmethod
    def _canonical_types(cls, types: tuple[PiiType, ...]) -> tuple[PiiType, ...]:
        return tuple(t for t in PII_TYPES if t in types)

    @field_validator("placeholders", mode="after")
    @classmethod
    def _complete_placeholders(cls, given: dict[PiiType, str]) -> dict[PiiType, str]:
        if any(not value for value in given.values()):
            raise ValueError("a placeholder cannot be empty")
        return {**DEFAULT_PLACEHOLDERS, **given}

    @field_validator("regions", mode="after")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        import phonenumbers

        upper = tuple(r.upper() for r in regions)
        unknown = [r for r in upper if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone regions {unknown}; use ISO 3166 codes such as US, DE")
        return upper

    @model_validator(mode="after")
    def _salt_for_hash_mode(self) -> PiiParams:
        if self.salt and self.salt_env:
            raise ValueError("give the hash key as salt or as salt_env, not both")
        if self.mode == "hash" and not (self.salt or self.salt_env):
            raise ValueError(
                "mode 'hash' needs a salt (or salt_env): an unsalted hash of an e-mail address "
                "or phone number can be reversed by hashing candidates"
            )
        return self


_SIGNALS: tuple[str, ...] = (*PII_TYPES, CHARS_REPLACED)


@register
class Pii(DocumentStep):
    """Replace personal data: e-mail addresses, public IPs, phone numbers, cards, IBANs.

    A transform that never rejects. Types, in the order they claim text (a span is
    replaced once, by the first type that finds it; look-alikes that an earlier type sets
    aside, such as a private IP or a Luhn-invalid card, are not tried as phone numbers):

    * ``email``: FineWeb's pattern (Penedo et al. 2024, "The FineWeb Datasets", section
      3; datatrove's ``PIIFormatter``, after RFC 5322's dot-atom), with a local part that
      starts with a letter, digit or "_" and holds no "/", "=", "?", "&" (a URL's path or
      query is not taken in), and a top-level domain of letters that is no file type or
      systemd unit (``logo@2x.png``, ``getty@tty1.service``).
    * ``ip``: IPv4 and IPv6 addresses that are globally reachable (the running Python's
      ``ipaddress.is_global``, after IANA's special-purpose registries, RFC 6890): private,
      loopback, link-local, shared, benchmarking, documentation and reserved ranges stay,
      as in FineWeb, and so do multicast groups. IPv6 addresses must also lie in the
      global unicast block ``2000::/3`` (``a::b`` in code is none) and not end in ``::``
      (a network prefix). Dotted quads that are versions or section numbers stay: inside
      a longer dotted number or a host name, after "version", "rev", "section" or
      "Product/", numbers under 100 starting with a one-digit number ("2.6.38.6") unless
      "IP", "address", "host", "server" or "DNS" comes just before, and numbers under 100
      written as a heading or a cross-reference ("12.2.2.2. Title" starting a line, "see
      11.7.3.1 – Title").
    * ``iban``: ISO 13616 account numbers, written whole or in groups of four separated by
      spaces: a registered country, that country's length, and the ISO 7064 mod 97-10
      check.
    * ``credit_card``: 13 to 19 digits, whole or in the printed groups (4-4-4-4, 4-4-4-4-3,
      4-6-5, 4-6-4) with one kind of separator, passing the Luhn check (ISO/IEC 7812-1) and
      starting with an issuer's prefix at a length it issues (Visa, Mastercard, American
      Express, Diners, Discover, JCB, UnionPay, Mir, Maestro), so ISBN-13s, EAN barcodes and
      other Luhn-valid numbers stay.
    * ``phone``: Google's libphonenumber matcher (the ``phonenumbers`` port) at leniency
      ``valid``, tried for each of ``regions`` in turn (US, GB, DE, FR by default; numbers
      in ``+CC`` form are found whatever the regions). It only sees runs of 7 or more ASCII
      digits and separators without double spaces, and only where a run could hold a
      national number of a region (a "0" group in Europe, 3-3-4 groups in North America),
      so text without such runs costs one regex scan. Dates, ranges, decimals, thousands,
      ZIP+4 codes, ISBNs and ISSNs are skipped; a match must stand alone (not inside a
      word, a longer number or a list of numbers) and be written as phone numbers are (in
      international form; in national form with 8 or more digits, the region's trunk
      prefix, North America's 3-3-4 groups, at most five groups), or follow a word such as
      "tel", "phone" or "call" (the only way a bare run of digits counts).

    Each value becomes its type's placeholder (``<EMAIL>``, ``<IP_ADDRESS>``, ``<PHONE>``,
    ``<CREDIT_CARD>``, ``<IBAN>``: special tokens as in StarCoder's PII redaction, Li et al.
    2023, and Dolma, Soldaini et al. 2024). In ``hash`` mode the placeholder carries the
    first ``hash_chars`` (8) hex digits of a keyed BLAKE2b (RFC 7693) of ``"type:value"``,
    the value in normal form (e-mail lowercased, IP in canonical form, phone in E.164, card
    digits, IBAN without spaces): ``<EMAIL:9f3a1c2b>``. The same value gets the same token in
    every document and every process, and nobody without the salt can test a guess. A
    placeholder not ending in ``>`` gets ``:hash`` appended. Hash mode refuses an empty salt
    (a plain hash of a phone number is reversed by hashing all phone numbers); a salt longer
    than BLAKE2b's 64-byte key is hashed down to one.

    Signals (int32): one count per type (``email``, ``ip``, ``iban``, ``credit_card``,
    ``phone``) and ``chars_replaced``, the characters of the original text replaced.
    """

    name: ClassVar[str] = "pii"
    kind: ClassVar = "transform"
    Params: ClassVar[type[StepParams]] = PiiParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {s: pa.int32() for s in _SIGNALS}

    def setup(self) -> None:
        import phonenumbers

        p = self.params
        assert isinstance(p, PiiParams)
        self._phonenumbers = phonenumbers
        self._leniency = getattr(phonenumbers.Leniency, p.phone_leniency.upper())
        # With no region only international numbers are found ("ZZ": unknown region).
        self._regions: tuple[str, ...] = p.regions or ("ZZ",)
        # What a number written in each region's national form must contain, so that runs
        # without it skip the (slow) matcher: the 3-3-4 groups in North America, a group
        # starting with the trunk prefix elsewhere ("0" in Europe); None: no cheap test.
        self._national_shape: dict[str, re.Pattern[str] | None] = {}
        for region in self._regions:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if phonenumbers.country_code_for_region(region) == 1:
                self._national_shape[region] = _NANP
            elif metadata is not None and metadata.national_prefix:
                self._national_shape[region] = re.compile(rf"(?<![0-9]){re.escape(metadata.national_prefix)}")
            else:
                self._national_shape[region] = None
        self._key: bytes | None = None
        if p.mode == "hash":
            salt = p.salt
            if p.salt_env is not None:
                salt = os.environ.get(p.salt_env, "")
                if not salt:
                    raise StepError(f"pii: environment variable {p.salt_env} (the salt) is unset or empty")
            key = salt.encode("utf-8")
            self._key = key if len(key) <= 64 else hashlib.blake2b(key).digest()
        self._types = frozenset(p.types)

    # -- detection ------------------------------------------------------------------------

    def find(self, text: str) -> list[Detection]:
        """The personal data of ``text`` this step replaces, in text order, not overlapping."""
        self.ensure_setup()
        p = self.params
        assert isinstance(p, PiiParams)
        types = self._types
        found: list[Detection] = []
        # Text taken by a detection, or by a look-alike that blocks the later types (a
        # private IP or a Luhn-invalid card is no phone number either).
        taken = _Taken()
        if "email" in types and "@" in text:
            for start, end, value in _emails(text):
                if taken.claim(start, end):
                    found.append(Detection(start, end, "email", value))
        if "ip" in types or "phone" in types:
            for start, end, value in _ips(text, p.public_ips_only):
                if taken.claim(start, end) and value and "ip" in types:
                    found.append(Detection(start, end, "ip", value))
        if "iban" in types:
            for m in _IBAN.finditer(text):
                start = m.start()
                iban = _valid_iban(m.group())
                if iban is not None and taken.claim(start, start + iban[1]):
                    found.append(Detection(start, start + iban[1], "iban", iban[0]))
        if "credit_card" in types or "phone" in types:
            runs = [m.span() for m in _DIGIT_RUN.finditer(text)]
            for run_start, run_end in runs:
                pos = run_start
                while (m := _CARD.search(text, pos, run_end + 2)) is not None:
                    number = m.group()
                    digits = number.replace(" ", "").replace("-", "")
                    if _valid_card(digits):
                        if taken.claim(*m.span()) and "credit_card" in types:
                            found.append(Detection(m.start(), m.end(), "credit_card", digits))
                        pos = m.end()
                        continue
                    # Card-shaped groups that fail the checks are no phone numbers either,
                    # unless they are a window of a longer run of groups (tried again from
                    # the next group: "0958 4111 1111 1111 1111" holds a card).
                    if len(digits) < len(number) and _isolated_groups(text, *m.span()):
                        taken.claim(*m.span())
                    pos = m.start() + 1
            if "phone" in types:
                for start, end, value in self._phones(text, runs, taken):
                    if taken.claim(start, end):
                        found.append(Detection(start, end, "phone", value))
        found.sort(key=lambda d: d.start)
        return found

    def _phones(
        self, text: str, runs: list[tuple[int, int]], taken: _Taken
    ) -> Iterator[tuple[int, int, str]]:
        """Phone numbers among the digit runs: (start, end, E.164 form)."""
        pn = self._phonenumbers
        for run_start, run_end in runs:
            # A phone number has no double spaces: those separate the columns of a table.
            pieces = [p.span() for p in _RUN_PIECE.finditer(text, run_start, run_end)]
            # Nor does it run into a card or an address found before.
            for start, end in (gap for piece in pieces for gap in taken.gaps(*piece)):
                candidate = text[start:end].strip(" \u00a0.-/")
                start += len(text[start:end]) - len(text[start:end].lstrip(" \u00a0.-/"))
                end = start + len(candidate)
                if sum(c.isdigit() for c in candidate) < 7:
                    continue
                if start and text[start - 1] in "+(":
                    start -= 1
                    candidate = text[start:end]
                if _NOT_PHONE.search(candidate) or _ISBN_SHAPE.fullmatch(candidate):
                    continue
                if _SERIAL_BEFORE.search(text, max(0, start - 16), start):
                    continue
                if _ZIP.fullmatch(candidate) and _STATE_BEFORE.search(text, max(0, start - 16), start):
                    continue
                keyword = _PHONE_KEYWORD.search(text, max(0, start - 20), start) is not None
                international = candidate.startswith(("+", "00"))
                for region in self._regions:
                    shape = self._national_shape[region]
                    if not (keyword or international or shape is None or shape.search(candidate)):
                        continue
                    matches = list(pn.PhoneNumberMatcher(candidate, region, leniency=self._leniency))
                    if not matches:
                        continue
                    for match in matches:
                        number_start, number_end = start + match.start, start + match.end
                        if not _stands_alone(text, number_start, number_end):
                            continue
                        if self._written_as_phone(match.raw_string, match.number, region) or (
                            _PHONE_KEYWORD.search(text, max(0, number_start - 20), number_start)
                        ):
                            e164 = pn.format_number(match.number, pn.PhoneNumberFormat.E164)
                            yield number_start, number_end, e164
                    break

    def _written_as_phone(self, raw: str, number: Any, region: str) -> bool:
        """Whether ``raw`` is written the way phone numbers are (else it needs a keyword).

        libphonenumber accepts any digits that form a valid number ("1645-1696" is a German
        mobile number without its 0), so a number in national form must also look like
        one: at least 8 digits, the region's trunk prefix ("0") where it has one, the
        3-3-4 groups in North America, no group over 8 digits, at most five groups and
        one of a single digit, and not one dot alone (a decimal). A number in international form
        ("+49 ...", "0049 ...") is taken as written; a bare run of digits never is.
        """
        pn = self._phonenumbers
        if raw.count("(") != raw.count(")"):
            return False
        if raw.startswith("+"):
            return True
        groups = _DIGITS.findall(raw)
        if len(groups) == 1:
            return False
        if number.country_code != pn.country_code_for_region(region):
            return True  # dialled from abroad: "00 49 30 901820", "011 44 20 7946 0958"
        if number.country_code == 1:
            return _NANP.fullmatch(raw) is not None
        digits = "".join(groups)
        prefix = pn.PhoneMetadata.metadata_for_region(region).national_prefix
        return (
            len(digits) >= 8
            and (not prefix or digits.startswith(prefix))
            and max(len(g) for g in groups) <= 8
            and sum(len(g) == 1 for g in groups) <= 1
            and len(groups) <= 5
            and raw.count(".") != 1
        )

    # -- replacement ----------------------------------------------------------------------

    def token(self, kind: PiiType, value: str) -> str:
        """The replacement of ``value`` (in normal form, as :meth:`find` gives it)."""
        self.ensure_setup()
        p = self.params
        assert isinstance(p, PiiParams)
        placeholder = p.placeholders[kind]
        if self._key is None:
            return placeholder
        size = (p.hash_chars + 1) // 2
        digest = hashlib.blake2b(f"{kind}:{value}".encode(), key=self._key, digest_size=size)
        tag = digest.hexdigest()[: p.hash_chars]
        if placeholder.endswith(">"):
            return f"{placeholder[:-1]}:{tag}>"
        return f"{placeholder}:{tag}"

    def compute(self, texts: list[str]) -> StepOutput:
        self.ensure_setup()
        counts = np.zeros((len(_SIGNALS), len(texts)), dtype=np.int32)
        row = {name: i for i, name in enumerate(_SIGNALS)}
        chars = row[CHARS_REPLACED]
        new_texts: list[str] = []
        for i, text in enumerate(texts):
            detections = self.find(text)
            if not detections:
                new_texts.append(text)
                continue
            parts: list[str] = []
            last = 0
            for d in detections:
                parts.append(text[last : d.start])
                parts.append(self.token(d.kind, d.value))
                last = d.end
                counts[row[d.kind], i] += 1
                counts[chars, i] += d.end - d.start
            parts.append(text[last:])
            new_texts.append("".join(parts))
        signals: dict[str, Any] = dict(zip(_SIGNALS, counts, strict=True))
        return StepOutput(signals=signals, texts=new_texts)


class _Taken:
    """Non-overlapping spans of a text, sorted by start."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def claim(self, start: int, end: int) -> bool:
        """Take ``[start, end)`` unless it overlaps a span already taken."""
        i = bisect.bisect_right(self.starts, start)
        if (i and self.ends[i - 1] > start) or (i < len(self.starts) and self.starts[i] < end):
            return False
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        return True

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` not taken."""
        i = bisect.bisect_right(self.ends, start)
        out = []
        while i < len(self.starts) and self.starts[i] < end:
            if self.starts[i] > start:
                out.append((start, self.starts[i]))
            start = max(start, self.ends[i])
            i += 1
        if start < end:
            out.append((start, end))
        return out


def _section_number(text: str, start: int, end: int) -> bool:
    """Whether the dotted quad ``text[start:end]`` reads as a section or version number.

    Numbers under 100 starting with a one-digit number ("4.8.3.1", "2.6.38.6") unless an
    address is spoken of just before ("IP", "address", "host", "server", "DNS": few public
    addresses look like this, and those that do mostly belong to network operators, as
    1.1.1.1 or 8.8.8.8); or numbers under 100 written as a heading ("12.2.2.2. Title"
    starting a line) or a cross-reference ("see\u00a011.7.3.1", "see 11.7.3.1 – Title",
    "第 4.2.13.1 節").
    """
    parts = text[start:end].split(".")
    if any(len(part) > 2 for part in parts):
        return False
    if len(parts[0]) == 1 and not _ADDRESS_BEFORE.search(text, max(0, start - 32), start):
        return True
    if _XREF_BEFORE.search(text, max(0, start - 2), start) or _XREF_AFTER.match(text, end):
        return True
    # A heading starts a line (or follows a blank run, in flattened text) and ends in ". ";
    # in the middle of a sentence "from 81.2.69.16. Then" is an address.
    line_start = start == 0 or text[start - 1] == "\n" or text[max(0, start - 2) : start] == "  "
    return line_start and _HEADING_AFTER.match(text, end) is not None


def _stands_alone(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is not part of a longer number, word or name.

    A number after or before another and a colon ("6:341-356 1976", "08:02 135522") is part
    of a longer one; a number in a run of numbers separated by spaces ("1 2 3 5 8 13 21") is
    one of a table or a list, unless it is written in a form only phone numbers take:
    international ("+44 20 7946 0958") or North American ("925.541.7625 662 Elm St").
    """
    number = text[start:end]
    listed = not (number.startswith("+") or _NANP.fullmatch(number))
    if start:
        before = text[start - 1]
        before2 = text[start - 2] if start > 1 else " "
        if before.isalnum() or before in "_+@" or (before in ".,/-" and before2.isalnum()):
            return False
        if before2.isdigit() and (before == ":" or (listed and before == " ")):
            return False
    if end < len(text):
        after = text[end]
        after2 = text[end + 1] if end + 1 < len(text) else " "
        if after.isalnum() or after == "_" or (after in ".,/-" and after2.isalnum()):
            return False
        if after2.isdigit() and (after == ":" or (listed and after == " ")):
            return False
    return True


def _isolated_groups(text: str, start: int, end: int) -> bool:
    """Whether no further digit group joins ``text[start:end]`` with a space or hyphen."""
    joined_before = start > 1 and text[start - 1] in " -" and text[start - 2].isdigit()
    joined_after = end + 1 < len(text) and text[end] in " -" and text[end + 1].isdigit()
    return not (joined_before or joined_after)


def _emails(text: str) -> Iterator[tuple[int, int, str]]:
    """E-mail addresses: (start, end, lowercased address)."""
    at = text.find("@")
    while at >= 0:
        local = _LOCAL.search(text, max(0, at - 64), at)
        start = _LOCAL_LEAD.match(text, local.start(), at).end() if local else at
        domain = _DOMAIN.match(text, at + 1) if start < at else None
        if domain:
            end = domain.end()
            if text[text.rfind(".", at, end) + 1 : end].lower() not in _NOT_TLDS:
                yield start, end, text[start:end].lower()
            at = text.find("@", end)
        else:
            at = text.find("@", at + 1)


def _ips(text: str, public_only: bool) -> Iterator[tuple[int, int, str]]:
    """IP addresses: (start, end, canonical form), the form empty where it stays."""
    for m in _IPV4_TAIL.finditer(text):
        head = _IPV4_HEAD.search(text, max(0, m.start() - 4), m.start())
        if head is None:
            continue
        start = head.start()
        try:
            addr = ipaddress.IPv4Address(text[start : m.end()])
        except ValueError:  # a number over 255, or a leading zero
            continue
        end = m.end()
        numbering = _NUMBERING_BEFORE.search(text, max(0, start - 12), start) is not None
        numbering = numbering or _section_number(text, start, end)
        keep = numbering or (public_only and not (addr.is_global and not addr.is_multicast))
        yield start, end, "" if keep else str(addr)
    pos = 0
    while (colon := _COLON.search(text, pos)) is not None:
        c = colon.start()
        start = _HEX_RUN_START.search(text, max(0, c - 39), c).start()  # type: ignore[union-attr]
        m = _IPV6.match(text, start)
        pos = m.end() if m else _HEX_RUN.match(text, c).end()  # type: ignore[union-attr]
        if m is None:
            continue
        try:
            addr6 = ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        # A trailing "::" writes a network prefix ("2001:db8:31a0::"), not a host.
        public = addr6.is_global and addr6 in _IPV6_UNICAST and not m.group().endswith("::")
        yield m.start(), m.end(), str(addr6) if public or not public_only else ""


def _valid_iban(candidate: str) -> tuple[str, int] | None:
    """(IBAN without spaces, characters of ``candidate`` it spans) when valid, else None."""
    length = IBAN_LENGTHS.get(candidate[:2])
    if length is None:
        return None
    compact = candidate.replace(" ", "")
    if len(compact) < length:
        return None
    span = len(candidate)
    if len(compact) > length:
        # "BE68 5390 0754 7034 BANK": the next word joined the groups; it may only be cut
        # off at a group boundary, in the spaced form.
        if " " not in candidate or length % 4:
            return None
        span = length + length // 4 - 1
        compact = compact[:length]
    if not compact[4:].isalnum() or not _mod97(compact):
        return None
    return compact, span


def _mod97(iban: str) -> bool:
    """ISO 7064 mod 97-10 as ISO 13616 applies it: the rearranged number mod 97 is 1."""
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _valid_card(digits: str) -> bool:
    """An issuer's prefix at a length it issues, and the Luhn check digit."""
    n = len(digits)
    for low, high, lengths in _CARD_RANGES:
        prefix = int(digits[: len(str(low))])
        if low <= prefix <= high and n in lengths:
            return _luhn(digits)
    return False


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
