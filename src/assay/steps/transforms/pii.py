"""Personal data: e-mail addresses, public IP addresses, phone numbers, payment cards and
IBANs, found in the text and replaced by placeholders or salted hashes."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from assay.steps.base import DocumentStep, StepError, StepOutput, StepParams, register
from assay.steps.transforms.pii_patterns import (
    CARD,
    DIGIT_RUN,
    DIGITS,
    IBAN,
    ISBN_SHAPE,
    NANP,
    NOT_PHONE,
    PHONE_KEYWORD,
    RUN_PIECE,
    SERIAL_BEFORE,
    STATE_BEFORE,
    ZIP,
    Taken,
    emails,
    ips,
    isolated_groups,
    stands_alone,
    valid_card,
    valid_iban,
)

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

@dataclass(frozen=True)
class Detection:
    """One piece of personal data: ``text[start:end]`` and its normal form (the hashed value)."""

    start: int
    end: int
    kind: PiiType
    value: str


class PiiParams(StepParams):
    """What to find and how to replace it (see :class:`Pii`)."""

    types: tuple[PiiType, ...] = Field(
        PII_TYPES, description="the types to find; the others are left in the text (counts stay 0)")
    mode: Literal["placeholder", "hash"] = Field(
        "placeholder", description="placeholder: one token per type; hash: the token carries a salted "
        "hash of the value, <EMAIL:9f3a1c2b>")
    placeholders: dict[PiiType, str] = Field(
        default_factory=lambda: dict(DEFAULT_PLACEHOLDERS),
        description="per-type replacements; types not named keep their default")
    # Hash mode needs a key, ``salt`` or ``salt_env``, not both. ``salt`` is written to the
    # run's manifest like every parameter; with ``salt_env`` the manifest records only the name.
    salt: str = Field("", description="the key of the hash (recorded in the manifest)")
    salt_env: str | None = Field(None, description="an environment variable holding the key (not recorded)")
    hash_chars: int = Field(8, ge=4, le=64, description="hex digits of the hash kept in the token")
    public_ips_only: bool = Field(
        True, description="replace only globally reachable addresses (FineWeb); false: every valid one")
    regions: tuple[str, ...] = Field(
        ("US", "GB", "DE", "FR"), description="ISO 3166 regions whose national phone formats are "
        "recognised, in order (international +49... formats always are)")
    phone_leniency: PhoneLeniency = Field(
        "valid", description="libphonenumber's leniency: how strictly a candidate must be a valid, "
        "well-grouped number")

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
                self._national_shape[region] = NANP
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
        taken = Taken()
        if "email" in types and "@" in text:
            for start, end, value in emails(text):
                if taken.claim(start, end):
                    found.append(Detection(start, end, "email", value))
        if "ip" in types or "phone" in types:
            for start, end, value in ips(text, p.public_ips_only):
                if taken.claim(start, end) and value and "ip" in types:
                    found.append(Detection(start, end, "ip", value))
        if "iban" in types:
            for m in IBAN.finditer(text):
                start = m.start()
                iban = valid_iban(m.group())
                if iban is not None and taken.claim(start, start + iban[1]):
                    found.append(Detection(start, start + iban[1], "iban", iban[0]))
        if "credit_card" in types or "phone" in types:
            runs = [m.span() for m in DIGIT_RUN.finditer(text)]
            for run_start, run_end in runs:
                pos = run_start
                while (m := CARD.search(text, pos, run_end + 2)) is not None:
                    number = m.group()
                    digits = number.replace(" ", "").replace("-", "")
                    if valid_card(digits):
                        if taken.claim(*m.span()) and "credit_card" in types:
                            found.append(Detection(m.start(), m.end(), "credit_card", digits))
                        pos = m.end()
                        continue
                    # Card-shaped groups that fail the checks are no phone numbers either,
                    # unless they are a window of a longer run of groups (tried again from
                    # the next group: "0958 4111 1111 1111 1111" holds a card).
                    if len(digits) < len(number) and isolated_groups(text, *m.span()):
                        taken.claim(*m.span())
                    pos = m.start() + 1
            if "phone" in types:
                for start, end, value in self._phones(text, runs, taken):
                    if taken.claim(start, end):
                        found.append(Detection(start, end, "phone", value))
        found.sort(key=lambda d: d.start)
        return found

    def _phones(
        self, text: str, runs: list[tuple[int, int]], taken: Taken
    ) -> Iterator[tuple[int, int, str]]:
        """Phone numbers among the digit runs: (start, end, E.164 form)."""
        pn = self._phonenumbers
        for run_start, run_end in runs:
            # A phone number has no double spaces: those separate the columns of a table.
            pieces = [p.span() for p in RUN_PIECE.finditer(text, run_start, run_end)]
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
                if NOT_PHONE.search(candidate) or ISBN_SHAPE.fullmatch(candidate):
                    continue
                if SERIAL_BEFORE.search(text, max(0, start - 16), start):
                    continue
                if ZIP.fullmatch(candidate) and STATE_BEFORE.search(text, max(0, start - 16), start):
                    continue
                keyword = PHONE_KEYWORD.search(text, max(0, start - 20), start) is not None
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
                        if not stands_alone(text, number_start, number_end):
                            continue
                        if self._written_as_phone(match.raw_string, match.number, region) or (
                            PHONE_KEYWORD.search(text, max(0, number_start - 20), number_start)
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
        groups = DIGITS.findall(raw)
        if len(groups) == 1:
            return False
        if number.country_code != pn.country_code_for_region(region):
            return True  # dialled from abroad: "00 49 30 901820", "011 44 20 7946 0958"
        if number.country_code == 1:
            return NANP.fullmatch(raw) is not None
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

