"""Countries and US states: ISO codes from codes, English and native names, and aliases.

Codes and ISO names come from pycountry; names in other languages from the CLDR data that Babel
ships: for every territory, its name in each language CLDR lists as official there (nationally
or regionally, de jure or de facto) plus English (`Deutschland`, `Suisse`, `Éire`, `日本`).

The native names are built lazily, on the first value that is neither an ISO code nor an ISO
English name nor an alias. Measured on babel 2.18.0 (166 locale files, ~475 names): ~150 ms; the
table keeps ~70 kB, plus Babel's global data (~2.2 MB, shared with any other use of Babel); the
build peaks at ~4.6 MB. The locale files are read directly because `babel.Locale` keeps every
locale it loads for the life of the process: over 80 MB for these (measured). A test checks the
names read agree with `Locale.territories`.
"""

from __future__ import annotations

import pickle
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import Any

import pycountry
from babel.core import get_global
from babel.languages import get_official_languages
from babel.localedata import exists, resolve_locale_filename

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


# Unicode's Combining Diacritical Marks block: the accents NFKD splits off Latin, Greek and
# Cyrillic letters (`é`, `ά`, `č`, `ё`). Other scripts' combining marks are vowels and signs that
# spell the word (Hindi `टोगो` Togo and `टोंगा` Tonga differ only in them), so they are kept.
_ACCENTS = range(0x0300, 0x0370)


def _key(text: str) -> str:
    """Letters (any script) and non-accent marks, casefolded, accents dropped: `Côte d'Ivoire`
    and `cote divoire` meet, as do `España` and `Espana`; `日本` stays `日本`."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if _kept(ch))


def _kept(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category.startswith("L"):
        return True
    return category.startswith("M") and ord(ch) not in _ACCENTS


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
    table.update(_codes())
    return table


@cache
def _codes() -> dict[str, str]:
    """Every alpha-3 and alpha-2 code, lowercase → alpha-2 lowercase."""
    alpha_2 = {country.alpha_3.lower(): country.alpha_2.lower() for country in pycountry.countries}
    return alpha_2 | {code: code for code in alpha_2.values()}


def normalize_country(value: str) -> str | None:
    """ISO 3166-1 alpha-2, lowercase (`DEU`, `Germany`, `Deutschland` → `de`); None when unknown
    or ambiguous.

    Accepts alpha-2 and alpha-3 codes, ISO names (official, common and short), a few everyday
    aliases (`UK`, `England`, `Russia`), and the country's name in its own official languages
    and in English as CLDR writes it (`Deutschland`, `Schweiz`, `Suisse`, `Svizzera`, `日本`), in
    any case, with or without accents and punctuation. Codes, ISO names and aliases come first;
    a name that CLDR gives to two countries resolves to None. Numeric codes are not accepted.
    Never raises.
    """
    if not isinstance(value, str):
        return None
    key = _key(clean(value))
    if not key:
        return None
    code = _countries().get(key)
    if code is None:
        code = _native_countries().get(key)
    return code


@cache
def _native_countries() -> dict[str, str]:
    """Lookup key → alpha-2 of every CLDR name in a territory's official languages and English."""
    return _name_table(_native_names(), codes=_codes())


def _name_table(names: Iterable[tuple[str, str]], codes: Mapping[str, str]) -> dict[str, str]:
    """Lookup key → alpha-2 from `(name, alpha-2)` pairs, leaving out the ambiguous.

    A key that two countries' names share (a word meaning one country in one language and
    another in a second) is dropped, so it resolves to nothing rather than to a guess. A key
    that spells a code is dropped too: codes are looked up first, and a name must never be read
    as, or hide, an alpha-2 or alpha-3 code.
    """
    found: defaultdict[str, set[str]] = defaultdict(set)
    for name, code in names:
        key = _key(name)
        if key:
            found[key].add(code)
    return {
        key: next(iter(owners))
        for key, owners in found.items()
        if len(owners) == 1 and key not in codes
    }


def _native_names() -> Iterator[tuple[str, str]]:
    """`(name, alpha-2 lowercase)` for every ISO country in each of its official languages and
    in English, as CLDR (Babel) writes them."""
    languages: defaultdict[str, set[str]] = defaultdict(set)
    for country in pycountry.countries:
        territory = country.alpha_2
        official = get_official_languages(territory, regional=True, de_facto=True)
        for language in (*official, "en"):
            languages[language].add(territory)
    for language, territories in sorted(languages.items()):
        if not exists(language):  # CLDR lists some languages it has no locale data for
            continue
        names = _territory_names(language)
        for territory in sorted(territories):
            name = names.get(territory)
            if name:
                yield name, territory.lower()


def _territory_names(language: str) -> dict[str, str]:
    """Territory code → name in `language`: what `babel.Locale(language).territories` holds,
    read from Babel's locale files without entering Babel's process-long locale cache."""
    names: dict[str, str] = {}
    for locale in _lineage(language):
        for code, name in _locale_data(locale).get("territories", {}).items():
            names.setdefault(code, name)
    return names


def _lineage(locale: str) -> Iterator[str]:
    """The locale and the locales it inherits from, as `babel.localedata.load` chains them;
    `root` (which names no territory) left out."""
    exceptions = get_global("parent_exceptions")
    while locale and locale != "root":
        yield locale
        parent = exceptions.get(locale)
        if parent is None:
            # A language alone, or a language in a script not its usual one (`zh_Hant`, `sr_Latn`:
            # every scripted locale CLDR lists as official), inherits from root.
            parent = locale.rsplit("_", 1)[0] if _has_territory(locale) else "root"
        locale = parent


def _has_territory(locale: str) -> bool:
    parts = locale.split("_")
    return len(parts) > 1 and (parts[-1].isupper() or parts[-1].isdigit())


def _locale_data(locale: str) -> dict[str, Any]:
    with open(resolve_locale_filename(locale), "rb") as file:
        data: dict[str, Any] = pickle.load(file)  # noqa: S301 - Babel's own package data, read as Babel reads it
    return data


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
