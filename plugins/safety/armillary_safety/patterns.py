"""The built-in PII patterns, and the validators that keep them from matching noise.

Each pattern is a regular expression plus, for card numbers and IBANs, a checksum: a
16-digit order number fails Luhn and stays, a real card number passes and goes. Digits
are ASCII digits (the digit patterns are compiled `re.ASCII`). Every
pattern matches at most `MAX_MATCH` characters, so the output scanner can find it in the
stream's hold-back window (see `OutputScanner.span`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

#: the longest text any built-in pattern matches (an e-mail address: 48 + 1 + 88; every
#: pattern's repeats are bounded so that this holds)
MAX_MATCH = 160


def luhn_valid(number: str) -> bool:
    """The Luhn checksum of the digits in `number` (separators ignored), for 12-19
    digits; anything else is not a card number."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


#: IBAN length per country (ISO 13616 registry); a country not listed is checked by the
#: checksum and the general 15-34 bounds alone
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}


def iban_valid(iban: str) -> bool:
    """ISO 13616: country code, two check digits, the account part; its length fits the
    country and the number (letters as 10-35, the first four characters moved to the
    end) is 1 modulo 97."""
    text = "".join(iban.split()).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", text):
        return False
    expected = IBAN_LENGTHS.get(text[:2])
    if expected is not None and len(text) != expected:
        return False
    moved = text[4:] + text[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def ssn_valid(ssn: str) -> bool:
    """Not a number the SSA never issues: area 000, 666 or 9xx, group 00, serial 0000."""
    area, group, serial = ssn[:3], ssn[4:6], ssn[7:]
    return (area not in ("000", "666") and not area.startswith("9") and group != "00"
            and serial != "0000")


@dataclass(frozen=True)
class PiiPattern:
    name: str
    regex: re.Pattern[str]
    #: a match is only PII when this says so (a checksum)
    validate: Callable[[str], bool] | None = None
    #: a cheap test every text holding a match passes: a text that fails it is not
    #: searched (the full patterns start with look-behinds, which Python's engine tries
    #: at every position, so a search costs tens of µs on a hold-back window)
    prefilter: Callable[[str], object] | None = None


_SEP = r"[ -]"
_NO_DIGITS = str.maketrans("", "", "0123456789")
#: every secret pattern holds one of these (lower-cased)
_SECRET_MARKS = ("sk-", "akia", "asia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
                 "github_pat_", "xox", "aiza", "api", "secret", "token", "password")


def may_hold_secret(text: str) -> bool:
    """Whether `text` holds one of `_SECRET_MARKS` (lower-cased once, not per mark)."""
    lowered = text.lower()
    return any(m in lowered for m in _SECRET_MARKS)


def digits(text: str) -> int:
    """How many ASCII digits `text` holds (the digit patterns are ASCII-only)."""
    return len(text) - len(text.translate(_NO_DIGITS))

BUILTIN: dict[str, PiiPattern] = {p.name: p for p in (
    # API-key-like secrets first: their bodies contain digit runs other patterns would
    # take apart
    PiiPattern("secret", re.compile(
        r"(?<![\w-])(?:"
        r"sk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_-]{20,100}"  # OpenAI / Anthropic style
        r"|(?:AKIA|ASIA)[0-9A-Z]{16}"                           # AWS access key id
        r"|gh[pousr]_[A-Za-z0-9]{36}"                           # GitHub tokens
        r"|github_pat_[A-Za-z0-9_]{22,90}"
        r"|xox[abprs]-[A-Za-z0-9-]{10,100}"                     # Slack
        r"|AIza[0-9A-Za-z_-]{35}"                               # Google API key
        r"|(?i:(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|password)"
        r"[\"']?\s{0,3}[:=]\s{0,3}[\"']?)[A-Za-z0-9_\-.+/]{12,80}[\"']?"  # key = "value"
        r")(?![\w-])"),
        prefilter=may_hold_secret),
    PiiPattern("iban", re.compile(
        r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b", re.ASCII),
        iban_valid, re.compile(r"[A-Z]{2}\d\d").search),
    # the look-behinds come after a first digit: a pattern that starts with a character
    # class is searched for that class first, several times faster
    PiiPattern("card", re.compile(rf"\d(?<![\d-]\d)(?:{_SEP}?\d){{11,18}}(?![\d-])", re.ASCII),
               luhn_valid, lambda text: digits(text) >= 12),
    PiiPattern("ssn", re.compile(
        r"\d(?<![\d-]\d)\d\d([ -])\d\d\1\d{4}(?![\d-])", re.ASCII), ssn_valid,
        re.compile(r"\d\d\d[ -]\d\d[ -]\d\d\d\d", re.ASCII).search),
    PiiPattern("email", re.compile(
        r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,47}@[A-Za-z0-9-]{1,24}"
        r"(?:\.[A-Za-z0-9-]{1,24}){0,2}\.[A-Za-z]{2,12}(?![\w-])"),
        prefilter=lambda text: "@" in text),
    PiiPattern("phone", re.compile(
        r"(?<![\w+])(?:"
        r"(?:\+?1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # North American
        r"|\+\d{1,3}(?:[ .-]?\d{2,4}){2,4}"                          # international, +
        r")(?![\w-])", re.ASCII),
        prefilter=re.compile(r"\d\d\d[ .)-]\s?\d|\+\d", re.ASCII).search),
)}
