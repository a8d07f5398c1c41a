"""Countries and US states: ISO codes from names, alpha-3 codes and common aliases (pycountry)."""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Any

import pycountry

from audience_sync.identifiers.text import clean

# Names people type that ISO 3166 does not list (pycountry has the official and common names).
_COUNTRY_ALIASES: dict[str, str] = {
    "uk": "gb",
    "greatbritain": "gb",
    "britain": "gb",
    "england": "gb",
    "scotland": "gb",
    "wales": "gb",
    "northernireland": "gb",
    "america": "us",
    "unitedstatesofamerica": "us",
    "usofa": "us",
    "russia": "ru",
    "vietnam": "vn",
    "turkey": "tr",
    "czechrepublic": "cz",
    "holland": "nl",
    "thenetherlands": "nl",
    "ivorycoast": "ci",
    "capeverde": "cv",
    "swaziland": "sz",
    "burma": "mm",
    "macedonia": "mk",
    "vatican": "va",
    "vaticancity": "va",
    "tanzania": "tz",
    "venezuela": "ve",
    "syria": "sy",
    "northkorea": "kp",
    "southkorea": "kr",
    "korea": "kr",
    "palestine": "ps",
    "uae": "ae",
    "brunei": "bn",
    "micronesia": "fm",
}


def _key(text: str) -> str:
    """Letters only, lowercase, accents dropped: `Côte d'Ivoire` and `cote divoire` meet."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if unicodedata.category(ch).startswith("L"))


@cache
def _countries() -> dict[str, str]:
    """Lookup key → ISO alpha-2 lowercase; alpha-2 codes win over alpha-3 over names."""
    table: dict[str, str] = dict(_COUNTRY_ALIASES)
    for country in pycountry.countries:
        code = country.alpha_2.lower()
        for attribute in ("official_name", "common_name", "name"):
            name = getattr(country, attribute, None)
            if name:
                table[_key(name)] = code
    for country in pycountry.countries:
        table[country.alpha_3.lower()] = country.alpha_2.lower()
    for country in pycountry.countries:
        table[country.alpha_2.lower()] = country.alpha_2.lower()
    return table


def normalize_country(value: str) -> str | None:
    """ISO 3166-1 alpha-2, lowercase (`United Kingdom`, `GBR`, `gb` → `gb`); None when unknown.

    Accepts alpha-2 and alpha-3 codes, ISO names (official, common and short) in any case, with
    or without accents and punctuation, and a few everyday aliases (`UK`, `England`, `Russia`).
    Numeric codes are not accepted. Never raises.
    """
    if not isinstance(value, str):
        return None
    key = _key(clean(value))
    if not key:
        return None
    return _countries().get(key)


@cache
def _us_states() -> dict[str, str]:
    """Full name, letters only and lowercase → two-letter code, for states, DC and territories."""
    subdivisions: Any = pycountry.subdivisions  # its lookup methods carry no annotations
    return {
        _key(subdivision.name): subdivision.code.split("-")[1].lower()
        for subdivision in subdivisions.get(country_code="US") or ()
    }


def us_state_code(letters: str) -> str | None:
    """The two-letter code of a US state given by its full name in letters only (`newyork`)."""
    return _us_states().get(letters)
