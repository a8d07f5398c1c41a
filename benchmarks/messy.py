"""Generated messy identifiers, like a CDP's: odd case, stray whitespace, junk, gaps, some Unicode.

Deterministic for a seed. Shares of each kind of mess are rough guesses at real exports, not
measurements; they are here so the fast path meets every branch it has.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

Generator = Callable[[int, int], list[str | None]]

_SYLLABLES = ["an", "be", "ca", "di", "el", "fo", "ga", "hu", "is", "jo", "ka", "li", "ma", "no"]
_PADS = ["", "", "", "", " ", "  ", "\t", " \n"]
_DOMAINS = ["gmail.com", "Gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "example.co.uk"]


def _word(rnd: random.Random, low: int = 2, high: int = 4) -> str:
    return "".join(rnd.choices(_SYLLABLES, k=rnd.randint(low, high)))


def _casing(rnd: random.Random, text: str) -> str:
    roll = rnd.random()
    if roll < 0.6:
        return text
    if roll < 0.8:
        return text.capitalize()
    return text.upper()


def _gap_or(rnd: random.Random, make: Callable[[], str | None]) -> str | None:
    roll = rnd.random()
    if roll < 0.01:
        return None
    if roll < 0.02:
        return rnd.choice(["", "  "])
    return make()


def emails(rows: int, seed: int = 1) -> list[str | None]:
    """~93% usable ASCII addresses (tags, dots, case, padding), ~3% junk, 1% Unicode, gaps."""
    rnd = random.Random(seed)

    def one() -> str:
        roll = rnd.random()
        if roll < 0.03:
            return rnd.choice(
                ["not-an-email", "a@b", "x@@y.com", "@example.com", "john smith@x.io"]
            )
        if roll < 0.04:
            return f"\u3000{_word(rnd)}é@exemple.fr"
        if roll < 0.05:
            return hashlib.sha256(_word(rnd).encode()).hexdigest().upper()
        local = _casing(rnd, _word(rnd)) + rnd.choice(["", ".", "_"]) + _word(rnd, 1, 2)
        local += str(rnd.randint(0, 9999)) if rnd.random() < 0.5 else ""
        if rnd.random() < 0.1:
            local += "+" + _word(rnd, 1, 2)
        return f"{rnd.choice(_PADS)}{local}@{rnd.choice(_DOMAINS)}{rnd.choice(_PADS)}"

    return [_gap_or(rnd, one) for _ in range(rows)]


# Real-world non-ASCII addresses: accented and other-script local parts, IDN domains (as
# Unicode, not punycode), some upper case (`É`, `Ü`, `Σ`), Unicode padding (no-break and
# ideographic spaces).
_LOCALS = ["josé.núñez", "FRANÇOIS", "zoë", "søren", "łukasz", "müller", "ΣΟΦΊΑ", "андрей",
           "李.伟", "たなか", "محمد", "straße", "Émilie+news", "ÅSA.ÖBERG"]  # fmt: skip
_IDN_DOMAINS = ["müller.de", "例え.jp", "bücher.example", "пример.рф", "exemple.fr",
                "gmail.com", "Gmail.com", "ñandú.com.ar", "café.fr"]  # fmt: skip
_UNICODE_PADS = ["", "", "", " ", "\u00a0", "\u3000", "\t"]


def mixed_emails(rows: int, seed: int = 3, non_ascii: float = 0.2) -> list[str | None]:
    """`emails`, with a share `non_ascii` of the rows holding non-ASCII characters (accented
    names, other scripts, IDN domains, Unicode padding), the rest as `emails` makes them."""
    rnd = random.Random(seed)
    plain = emails(rows, seed)

    def accented() -> str:
        local = rnd.choice(_LOCALS)
        if rnd.random() < 0.5:
            local += str(rnd.randint(0, 999))
        local = _casing(rnd, local) if rnd.random() < 0.3 else local
        if rnd.random() < 0.5:  # an ASCII local part at an IDN domain
            local = _casing(rnd, _word(rnd)) + rnd.choice(["", "."]) + _word(rnd, 1, 2)
        domain = rnd.choice(_IDN_DOMAINS)
        if (local + domain).isascii():  # an ASCII address at an ASCII domain: not this kind
            domain = "müller.de"
        pad = rnd.choice(_UNICODE_PADS)
        return f"{pad}{local}@{domain}{rnd.choice(_UNICODE_PADS)}"

    return [accented() if rnd.random() < non_ascii else v for v in plain]


def stored_phones(rows: int, seed: int = 2) -> list[str | None]:
    """E.164 as import stores it: mostly NANP, some UK, German, French, Brazilian, Indian."""
    rnd = random.Random(seed)

    def one() -> str:
        roll = rnd.random()
        if roll < 0.01:
            return hashlib.sha256(str(rnd.random()).encode()).hexdigest()
        if roll < 0.7:
            area = f"{rnd.randint(2, 9)}{rnd.randint(0, 99):02d}"
            return f"+1{area}{rnd.randint(2, 9)}{rnd.randint(0, 999999):06d}"
        return rnd.choice(
            [
                f"+447{rnd.randint(100000000, 999999999)}",
                f"+4915{rnd.randint(100000000, 999999999)}",
                f"+336{rnd.randint(10000000, 99999999)}",
                f"+5511{rnd.randint(900000000, 999999999)}",
                f"+919{rnd.randint(100000000, 999999999)}",
            ]
        )

    return [_gap_or(rnd, one) for _ in range(rows)]


def raw_phones(rows: int, seed: int = 3) -> list[str | None]:
    """Phones as people type them: every one needs a full parse."""
    rnd = random.Random(seed)

    def one() -> str:
        n = f"{rnd.randint(200, 999)}{rnd.randint(200, 999)}{rnd.randint(0, 9999):04d}"
        return rnd.choice(
            [
                f"({n[:3]}) {n[3:6]}-{n[6:]}",
                f"{n[:3]}.{n[3:6]}.{n[6:]}",
                f"+1 {n[:3]} {n[3:6]} {n[6:]}",
                f"1-{n[:3]}-{n[3:6]}-{n[6:]}",
                f"0044 20 {n[3:7]} {n[6:]}",
                "12345",
            ]
        )

    return [_gap_or(rnd, one) for _ in range(rows)]


def mobile_ids(rows: int, seed: int = 4) -> list[str | None]:
    """IDFA/GAID in either case, some padded; ~2% zeroed (limit ad tracking), ~2% malformed."""
    rnd = random.Random(seed)

    def one() -> str:
        roll = rnd.random()
        if roll < 0.02:
            return "00000000-0000-0000-0000-000000000000"
        h = f"{rnd.getrandbits(128):032x}"
        if roll < 0.04:
            return h  # no hyphens
        uid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        uid = uid.upper() if rnd.random() < 0.5 else uid
        return f"{rnd.choice(_PADS)}{uid}{rnd.choice(_PADS)}"

    return [_gap_or(rnd, one) for _ in range(rows)]


def _from_pool(pool: list[str]) -> Generator:
    def generate(rows: int, seed: int) -> list[str | None]:
        rnd = random.Random(seed)
        return [_gap_or(rnd, lambda: rnd.choice(pool)) for _ in range(rows)]

    return generate


def _pool(seed: int, size: int, make: Callable[[random.Random], str]) -> list[str]:
    rnd = random.Random(seed)
    return [make(rnd) for _ in range(size)]


def _name(rnd: random.Random) -> str:
    base = _casing(rnd, _word(rnd))
    roll = rnd.random()
    if roll < 0.05:
        return f"O'{base}"
    if roll < 0.1:
        return f"{base}-{_word(rnd).capitalize()}"
    if roll < 0.13:
        return f" Valéry {base} "
    return base


def _zip(rnd: random.Random) -> str:
    five = f"{rnd.randint(0, 99999):05d}"
    return rnd.choice([five, f"{five}-{rnd.randint(0, 9999):04d}", f"SW{rnd.randint(1, 20)} 1AA"])


_STATES = ["California", "CA", "new york", "NY", "Texas", "tx", "Île-de-France", "Bavaria", "??"]
_COUNTRIES = ["US", "us", "USA", "United States", "United Kingdom", "GB", "UK", "DEU", "Germany",
              "France", "fr", "Brasil", "Brazil", "Atlantis"]  # fmt: skip
_GENDERS = ["m", "M", "male", "Female", "f", "woman", "man", "other", "unknown", "F "]

GENERATORS: dict[str, Generator] = {
    "email": emails,
    "phone": stored_phones,
    "mobile_id": mobile_ids,
    "external_id": lambda rows, seed: [f" CUST-{i} " for i in range(rows)],
    "first_name": _from_pool(_pool(11, 20_000, _name)),
    "last_name": _from_pool(_pool(12, 100_000, _name)),
    "city": _from_pool(_pool(13, 5_000, lambda r: f"{_casing(r, _word(r))} {_word(r)}")),
    "state": _from_pool(_STATES),
    "zip": _from_pool(_pool(14, 40_000, _zip)),
    "country": _from_pool(_COUNTRIES),
    "gender": _from_pool(_GENDERS),
}
"""Messy values for each field, by `Field` value."""
