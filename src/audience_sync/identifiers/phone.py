"""Phone numbers: parse once to E.164 with libphonenumber, and recognise stored E.164 cheaply.

Parsing costs ~20 µs a number, so import parses each phone once (`parse_phone_e164`) and stores
the E.164 form; the sync then only formats and hashes. `E164Table` describes, per country calling
code, when a `+digits` string is one that libphonenumber would keep exactly as written and call
possible, so the bulk path can accept stored E.164 without parsing it again.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumber, PhoneNumberFormat

from audience_sync.identifiers.geo import normalize_country
from audience_sync.identifiers.text import clean

# The stdlib's own regex parser (no stubs; `sre_parse` is its deprecated alias), used to read
# libphonenumber's trunk-prefix patterns.
sre_parse: Any = importlib.import_module("re._parser")

DEFAULT_REGION = "US"

# libphonenumber's bounds on the national significant number (_MIN/_MAX_LENGTH_FOR_NSN).
_MIN_NSN = 2
_MAX_NSN = 17

_PLUS_DIGITS = re.compile(r"\+([1-9][0-9]*)")  # ASCII digits only: \d would take any script's


def resolve_region(region: str | None) -> str:
    """The region to parse national numbers in: an ISO alpha-2 code (names and alpha-3 accepted).

    Missing or unrecognisable regions fall back to `US`, the last step of the rule "the
    profile's country, else the audience's (or tenant's) default region, else US".
    """
    if region:
        code = normalize_country(region)
        if code is not None:
            return code.upper()
    return DEFAULT_REGION


def parse_phone_e164(raw: str, region: str | None = None) -> str | None:
    """The E.164 form (`+16505551212`) of a raw phone number, or None when it is unusable.

    `+...` is international as written; `00...` is international whatever the region (numbers
    typed in Europe); anything else is a national number in `region` (default `US`), its trunk
    prefix dropped. Accepted when libphonenumber calls it *possible* (a plausible length for the
    country): stricter validity rejects real numbers when its metadata lags. Never raises.
    """
    text = _international(raw)
    if text is None:
        return None
    return _e164(text, resolve_region(region))


def parse_international_phone(raw: str) -> str | None:
    """The E.164 form of a phone number that carries its own country code (`+...` or `00...`);
    None for any other, which would need a region to be read.

    For rows whose country is present but unrecognised: such a country must not become a
    region, and guessing one (`US`) could give a stranger's number. The acceptance rule is
    `parse_phone_e164`'s (*possible*, not *valid*). Never raises.
    """
    text = _international(raw)
    if text is None:
        return None
    # With no region, libphonenumber reads only a number that starts with its country code after
    # a plus (`(+44) 20...` too); a national number raises, and is None here.
    return _e164(text, None)


def _international(raw: str) -> str | None:
    """The cleaned text with a leading `00` written as `+`; None when nothing is left."""
    if not isinstance(raw, str):
        return None
    text = clean(raw)
    if not text:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    return text


def _e164(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
        if not phonenumbers.is_possible_number(number):
            return None
        e164: str = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    except NumberParseException:
        return None
    except Exception:  # libphonenumber on hostile input: a bad phone never fails a batch
        return None
    return e164


@dataclass(frozen=True, slots=True)
class CallingCode:
    """What libphonenumber knows of one country calling code that matters for stored E.164."""

    code: str
    possible_lengths: frozenset[int]
    # libphonenumber strips a national (trunk) prefix while parsing, even after `+`: `0` in most
    # of Europe, `1` in NANP. A national number starting with a digit that prefix's pattern can
    # start with might be rewritten, so it never takes the shortcut; it is parsed.
    trunk_digits: frozenset[str]


@dataclass(frozen=True, slots=True)
class E164Table:
    """Every country calling code, for recognising stored E.164 without parsing it."""

    codes: dict[str, CallingCode]

    def canonical(self, text: str) -> str | None:
        """`text` itself when it is `+digits` that libphonenumber would parse to exactly `text`
        and call possible; None when that cannot be told without parsing."""
        match = _PLUS_DIGITS.fullmatch(text)
        if match is None:
            return None
        digits = match.group(1)
        if len(digits) < 4:  # shorter than any real number; parse it
            return None
        for size in (1, 2, 3):  # calling codes are prefix-free: at most one size matches
            info = self.codes.get(digits[:size])
            if info is None:
                continue
            nsn = digits[size:]
            if len(nsn) not in info.possible_lengths:
                return None
            if nsn[0] in info.trunk_digits:
                return None
            return text
        return None

    def head_length_keys(self) -> frozenset[int]:
        """`int(first four digits) * 100 + digit count` of every `+digits` string `canonical`
        accepts: it depends on nothing else, which lets the bulk path decide with one lookup."""
        keys: set[int] = set()
        for code, info in self.codes.items():
            free = 4 - len(code)
            for rest in range(10**free):
                head = code + str(rest).zfill(free)
                if head[len(code)] in info.trunk_digits:
                    continue
                keys.update(int(head) * 100 + len(code) + n for n in info.possible_lengths)
        return frozenset(keys)


@cache
def e164_table() -> E164Table:
    """The table built from the installed libphonenumber metadata (built once, ~10 ms)."""
    codes: dict[str, CallingCode] = {}
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        region = phonenumbers.region_code_for_country_code(code)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None:
            continue
        lengths = frozenset(
            length
            for length in range(_MIN_NSN, _MAX_NSN + 1)
            # Possibility depends on the length alone; the digits are placeholders.
            if phonenumbers.is_possible_number(
                PhoneNumber(country_code=code, national_number=int("5" * length))
            )
        )
        prefix = metadata.national_prefix_for_parsing or ""
        codes[str(code)] = CallingCode(str(code), lengths, _first_digits(prefix))
    return E164Table(codes)


_ALL_DIGITS = frozenset("0123456789")


def _first_digits(pattern: str) -> frozenset[str]:
    """Every digit a string matched by `pattern` at its start can begin with; all ten when the
    pattern can match the empty string or uses a construct not read here (a safe answer)."""
    if not pattern:
        return frozenset()
    try:
        first, nullable = _first_of_sequence(list(sre_parse.parse(pattern)))
    except Exception:  # an unreadable pattern: parse every such number
        return _ALL_DIGITS
    return _ALL_DIGITS if nullable else frozenset(first) & _ALL_DIGITS


def _first_of_sequence(items: list[Any]) -> tuple[set[str], bool]:
    first: set[str] = set()
    for op, arg in items:
        part, nullable = _first_of_item(str(op), arg)
        first |= part
        if not nullable:
            return first, False
    return first, True


def _first_of_item(op: str, arg: Any) -> tuple[set[str], bool]:
    if op == "LITERAL":
        return {chr(arg)}, False
    if op == "IN":
        chars: set[str] = set()
        for kind, value in arg:
            if str(kind) == "LITERAL":
                chars.add(chr(value))
            elif str(kind) == "RANGE":
                chars.update(chr(c) for c in range(value[0], value[1] + 1))
            else:  # NEGATE, CATEGORY (\d, ...): any digit
                return set(_ALL_DIGITS), False
        return chars, False
    if op == "BRANCH":
        results = [_first_of_sequence(list(branch)) for branch in arg[1]]
        return set().union(*(r[0] for r in results)), any(r[1] for r in results)
    if op == "SUBPATTERN":
        return _first_of_sequence(list(arg[3]))
    if op in ("MAX_REPEAT", "MIN_REPEAT"):
        first, nullable = _first_of_sequence(list(arg[2]))
        return first, nullable or arg[0] == 0
    if op == "AT":  # an anchor consumes nothing
        return set(), True
    return set(_ALL_DIGITS), True
