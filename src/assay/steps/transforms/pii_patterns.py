"""The patterns and checks behind the ``pii`` step: where each kind of personal data may be
in a text (regular expressions) and whether a candidate is one (checksums, context).

Kept apart from the step so each rule can be read, and tested, on its own; the step
(:mod:`.pii`) runs them in order and replaces what they find.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterator, Mapping

# -- e-mail ------------------------------------------------------------------------------
# FineWeb's pattern (datatrove's PIIFormatter, after RFC 5322's dot-atom), matched around each
# "@": a local part of at most 64 characters that starts with a letter, digit or "_" (as
# FineWeb's leading \b does: "'ann@x.org'" gives "ann@x.org", a decorator "`@app.route"
# nothing) and has no "/", "=", "?" or "&" (so a URL's path or query is not taken in), and a
# domain whose top-level label is letters (or punycode).
ATEXT = r"A-Za-z0-9!#$%'*+^_`{|}~-"
LOCAL = re.compile(rf"(?<![.{ATEXT}])[{ATEXT}]+(?:\.[{ATEXT}]+)*\Z")
LOCAL_LEAD = re.compile(r"[^A-Za-z0-9_]*")
DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})\b"
)
# Endings that are file types or systemd units, not top-level domains: "logo@2x.png",
# "getty@tty1.service", "@args.txt".
NOT_TLDS = frozenset(
    "png jpg jpeg gif svg webp bmp ico tif tiff txt json yaml yml html htm php xml log conf "
    "cfg ini service socket target timer mount automount slice scope swap device path "
    "journal".split()
)

# -- IP addresses ------------------------------------------------------------------------
# Found from their last three numbers (a dot is cheap to look for), then the first one; a
# dotted number of five or more parts is a version (1.2.3.4.5), and one followed by a name
# is a host name ("1.0.0.127.in-addr.arpa").
IPV4_TAIL = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?!\w|\.\w)")
IPV4_HEAD = re.compile(r"(?<![\w.])[0-9]{1,3}\Z")
# Section numbers: a heading ("12.2.2.2. Title" at the start of a line) or a cross-reference
# (a dash after, "see 11.7.3.1 – Title"; a no-break space or the Japanese and Chinese "第"
# before).
HEADING_AFTER = re.compile(r"\.(?:\s|\Z)")
XREF_AFTER = re.compile(r"\s?[–—]")
XREF_BEFORE = re.compile(r"(?:\u00a0|第\s?)\Z")
ADDRESS_BEFORE = re.compile(r"(?i)\b(?:ip|ipv4|address|addr|host|server|dns|ping)\b")
# Words before a dotted number that make it a version or a section, not an address; and a
# product before a slash, as in user agents ("Firefox/2.0.0.11").
NUMBERING_BEFORE = re.compile(
    r"(?i)(?:\b(?:v|version|ver|revision|rev|release|build|section|chapter|figure|table)\.?"
    r"|§|[a-z]/)[ \t\u00a0]*\Z"
)
# IPv6 is looked for where a colon is followed by a hex digit or another colon.
COLON = re.compile(r":[0-9A-Fa-f:]")
HEX_RUN_START = re.compile(r"[0-9A-Fa-f:]*\Z")
HEX_RUN = re.compile(r"[0-9A-Fa-f:]*")
H16 = r"[0-9A-Fa-f]{1,4}"
IPV6 = re.compile(
    rf"(?<![\w:.])(?:(?:{H16}:){{7}}{H16}"
    rf"|(?:{H16}(?::{H16}){{0,6}})?::(?:{H16}(?::{H16}){{0,6}})?)(?![\w:]|\.[0-9])"
)
# The only IPv6 block IANA has allocated for global unicast; outside it "cafe::1" or
# "a::b" are names in code, not addresses.
IPV6_UNICAST = ipaddress.IPv6Network("2000::/3")

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
IBAN = re.compile(
    r"[A-Z](?<!\w[A-Z])[A-Z][0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b"
)

# -- payment cards and phone numbers ------------------------------------------------------
# Both are looked for in runs of ASCII digits and the separators numbers are written with.
DIGIT_RUN = re.compile(r"[0-9](?<![0-9][0-9])[0-9 \u00a0().\-/]{4,}[0-9]")
# 13 to 19 digits written whole, or in the groups printed on cards: 4-4-4-4(-3) (Visa,
# Mastercard, Discover, JCB, UnionPay...), 4-6-5 (American Express), 4-6-4 (Diners), with one
# space or hyphen, the same one throughout.
CARD = re.compile(
    r"[0-9](?<![\w+.,/-][0-9])(?:[0-9]{12,18}|[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}"
    r"(?:\1[0-9]{3})?|[0-9]{3}([ -])[0-9]{6}\2[0-9]{4,5})(?![\w/-]|[.,][0-9])"
)
# Issuer identification number ranges (ISO/IEC 7812-1, as the networks publish them) and
# the card lengths each issues: (first digits low, high, lengths).
CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
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
PHONE_KEYWORD = re.compile(
    r"(?i)\b(?:tel|phone|fax|mobile|cell|call|telefon|telefono|téléphone|tél|handy|mobil"
    r"|whatsapp|sms)"
)
# Runs holding a date (2024-01-15, 15.01.2024, 01/15/2024) or a range ("0.29..14.48"), or
# that are a decimal (3.14159265) or a number with thousands separators (1.234.567).
NOT_PHONE = re.compile(
    r"(?<![0-9])(?:[0-9]{4}([-./])[0-9]{1,2}\1[0-9]{1,2}|[0-9]{1,2}([-./])[0-9]{1,2}\2[0-9]{4})"
    r"(?![0-9])|^\(?[0-9]+\.[0-9]+\)?$|^[0-9]{1,3}(?:\.[0-9]{3})+$|\.\."
)
DIGITS = re.compile(r"[0-9]+")
# North American numbers: (202) 555-0143, 202-555-0143, 202.555.0143, 1 800 555 0199.
NANP = re.compile(r"(?:1[ .-]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[ ./-])[0-9]{3}[ .-][0-9]{4}")
# A US ZIP+4 code after a state: "Boston, MA 02110-1301".
ZIP = re.compile(r"[0-9]{5}-[0-9]{4}")
STATE_BEFORE = re.compile(r"\b[A-Z]{2},?\s+\Z")
# Book and serial numbers: "ISBN 0-306-40615-2", "ISSN 0954-0636".
SERIAL_BEFORE = re.compile(r"(?i)\bIS[BS]N(?:-1[03])?[\s:]*\Z")
ISBN_SHAPE = re.compile(r"(?:97[89][- ])?[0-9]{1,5}[- ][0-9]{1,7}[- ][0-9]{1,7}[- ][0-9X]")
# The parts of a digit run between double spaces (the columns of a table).
RUN_PIECE = re.compile(r"[0-9(](?:[^ ]| (?! ))*")



class Taken:
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


def section_number(text: str, start: int, end: int) -> bool:
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
    if len(parts[0]) == 1 and not ADDRESS_BEFORE.search(text, max(0, start - 32), start):
        return True
    if XREF_BEFORE.search(text, max(0, start - 2), start) or XREF_AFTER.match(text, end):
        return True
    # A heading starts a line (or follows a blank run, in flattened text) and ends in ". ";
    # in the middle of a sentence "from 81.2.69.16. Then" is an address.
    line_start = start == 0 or text[start - 1] == "\n" or text[max(0, start - 2) : start] == "  "
    return line_start and HEADING_AFTER.match(text, end) is not None


def stands_alone(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is not part of a longer number, word or name.

    A number after or before another and a colon ("6:341-356 1976", "08:02 135522") is part
    of a longer one; a number in a run of numbers separated by spaces ("1 2 3 5 8 13 21") is
    one of a table or a list, unless it is written in a form only phone numbers take:
    international ("+44 20 7946 0958") or North American ("925.541.7625 662 Elm St").
    """
    number = text[start:end]
    listed = not (number.startswith("+") or NANP.fullmatch(number))
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


def isolated_groups(text: str, start: int, end: int) -> bool:
    """Whether no further digit group joins ``text[start:end]`` with a space or hyphen."""
    joined_before = start > 1 and text[start - 1] in " -" and text[start - 2].isdigit()
    joined_after = end + 1 < len(text) and text[end] in " -" and text[end + 1].isdigit()
    return not (joined_before or joined_after)


def emails(text: str) -> Iterator[tuple[int, int, str]]:
    """E-mail addresses: (start, end, lowercased address)."""
    at = text.find("@")
    while at >= 0:
        local = LOCAL.search(text, max(0, at - 64), at)
        start = LOCAL_LEAD.match(text, local.start(), at).end() if local else at
        domain = DOMAIN.match(text, at + 1) if start < at else None
        if domain:
            end = domain.end()
            if text[text.rfind(".", at, end) + 1 : end].lower() not in NOT_TLDS:
                yield start, end, text[start:end].lower()
            at = text.find("@", end)
        else:
            at = text.find("@", at + 1)


def ips(text: str, public_only: bool) -> Iterator[tuple[int, int, str]]:
    """IP addresses: (start, end, canonical form), the form empty where it stays."""
    for m in IPV4_TAIL.finditer(text):
        head = IPV4_HEAD.search(text, max(0, m.start() - 4), m.start())
        if head is None:
            continue
        start = head.start()
        try:
            addr = ipaddress.IPv4Address(text[start : m.end()])
        except ValueError:  # a number over 255, or a leading zero
            continue
        end = m.end()
        numbering = NUMBERING_BEFORE.search(text, max(0, start - 12), start) is not None
        numbering = numbering or section_number(text, start, end)
        keep = numbering or (public_only and not (addr.is_global and not addr.is_multicast))
        yield start, end, "" if keep else str(addr)
    pos = 0
    while (colon := COLON.search(text, pos)) is not None:
        c = colon.start()
        start = HEX_RUN_START.search(text, max(0, c - 39), c).start()  # type: ignore[union-attr]
        m = IPV6.match(text, start)
        pos = m.end() if m else HEX_RUN.match(text, c).end()  # type: ignore[union-attr]
        if m is None:
            continue
        try:
            addr6 = ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        # A trailing "::" writes a network prefix ("2001:db8:31a0::"), not a host.
        public = addr6.is_global and addr6 in IPV6_UNICAST and not m.group().endswith("::")
        yield m.start(), m.end(), str(addr6) if public or not public_only else ""


def valid_iban(candidate: str) -> tuple[str, int] | None:
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
    if not compact[4:].isalnum() or not mod97(compact):
        return None
    return compact, span


def mod97(iban: str) -> bool:
    """ISO 7064 mod 97-10 as ISO 13616 applies it: the rearranged number mod 97 is 1."""
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def valid_card(digits: str) -> bool:
    """An issuer's prefix at a length it issues, and the Luhn check digit."""
    n = len(digits)
    for low, high, lengths in CARD_RANGES:
        prefix = int(digits[: len(str(low))])
        if low <= prefix <= high and n in lengths:
            return luhn(digits)
    return False


def luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
