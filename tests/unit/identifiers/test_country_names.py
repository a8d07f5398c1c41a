"""Countries resolve from the names people type in the country's own languages (CLDR via Babel)."""

from __future__ import annotations

from collections.abc import Iterator

import pycountry
import pytest
from babel import Locale
from babel.languages import get_official_languages
from babel.localedata import exists

from audience_sync.identifiers import geo, normalize_country


@pytest.fixture
def fresh_native_table() -> Iterator[None]:
    """The native-name table unbuilt before the test and rebuilt from real data after it."""
    geo._native_countries.cache_clear()
    yield
    geo._native_countries.cache_clear()


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("Deutschland", "de"),
        ("España", "es"),
        ("Espana", "es"),
        ("México", "mx"),
        ("Brasil", "br"),
        ("Nederland", "nl"),
        ("Österreich", "at"),
        ("Osterreich", "at"),
        ("Schweiz", "ch"),
        ("Suisse", "ch"),
        ("Svizzera", "ch"),
        ("Svizra", "ch"),
        ("Italia", "it"),
        ("Polska", "pl"),
        ("Sverige", "se"),
        ("Danmark", "dk"),
        ("Norge", "no"),
        ("Suomi", "fi"),
        ("Česko", "cz"),
        ("cesko", "cz"),
        ("Magyarország", "hu"),
        ("Ελλάδα", "gr"),
        ("ΕΛΛΑΔΑ", "gr"),
        ("Россия", "ru"),
        ("Україна", "ua"),
        ("日本", "jp"),
        ("中国", "cn"),
        ("台灣", "tw"),
        ("대한민국", "kr"),
        ("Türkiye", "tr"),
        ("België", "be"),
        ("Belgique", "be"),
        ("Belgien", "be"),
        ("Éire", "ie"),
        ("Eire", "ie"),
        ("भारत", "in"),
        ("ไทย", "th"),
        ("مصر", "eg"),
        (" deutschland ", "de"),
        ("Myanmar (Burma)", "mm"),
    ],
)
def test_a_native_name_maps_to_alpha_2(value: str, code: str) -> None:
    assert normalize_country(value) == code


def test_a_name_two_countries_share_is_left_out() -> None:
    names = [("Kongo", "cg"), ("Kongo", "cd"), ("Brasil", "br")]
    assert geo._name_table(names, codes={}) == {"brasil": "br"}


def test_names_that_meet_once_accents_go_are_left_out() -> None:
    # Māori names Chad `Kāta` and Qatar `Katā`: the same key without their accents.
    maori = geo._territory_names("mi")
    names = [(maori["TD"], "td"), (maori["QA"], "qa")]
    assert geo._name_table(names, codes={}) == {}


def test_an_ambiguous_native_name_resolves_to_none(
    fresh_native_table: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [("Kongo", "cg"), ("Kongo", "cd"), ("Brasil", "br")]
    monkeypatch.setattr(geo, "_native_names", lambda: iter(names))
    assert normalize_country("Kongo") is None
    assert normalize_country("Brasil") == "br"


def test_a_native_name_spelling_a_code_is_left_out() -> None:
    # `Deu` as some language's name for Austria must not hide DEU, Germany's alpha-3 code.
    names = [("Deu", "at"), ("At", "de"), ("Österreich", "at")]
    assert geo._name_table(names, codes=geo._codes()) == {"osterreich": "at"}


def test_codes_are_looked_up_before_native_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geo, "_native_countries", lambda: {"deu": "at", "osterreich": "at"})
    assert normalize_country("DEU") == "de"
    assert normalize_country("Österreich") == "at"


def test_every_alpha_3_code_still_maps_to_its_country() -> None:
    for country in pycountry.countries:
        assert normalize_country(country.alpha_3) == country.alpha_2.lower()


def test_no_native_name_contradicts_an_iso_name_or_alias() -> None:
    # ISO names and aliases are looked up first: a clash would silently pick their meaning, where
    # an ambiguous name should resolve to None. With Babel's data today there is none.
    english = geo._countries()
    clashes = {
        key: (code, english[key])
        for key, code in geo._native_countries().items()
        if key in english and english[key] != code
    }
    assert clashes == {}


def test_codes_and_english_names_do_not_build_the_native_table(fresh_native_table: None) -> None:
    assert normalize_country("DEU") == "de"
    assert normalize_country("Germany") == "de"
    assert normalize_country("UK") == "gb"
    assert geo._native_countries.cache_info().currsize == 0
    assert normalize_country("Deutschland") == "de"
    assert geo._native_countries.cache_info().currsize == 1


def test_names_read_from_babel_files_agree_with_babel_locales() -> None:
    languages = {"en"}
    for country in pycountry.countries:
        languages |= set(get_official_languages(country.alpha_2, regional=True, de_facto=True))
    for language in sorted(filter(exists, languages)):
        assert geo._territory_names(language) == dict(Locale.parse(language).territories), language


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("España", "espana"),
        ("Česko", "cesko"),
        ("Ελλάδα", "ΕΛΛΑΔΑ"),
        ("Côte d'Ivoire", "cotedivoire"),
    ],
)
def test_accents_case_and_punctuation_do_not_matter(a: str, b: str) -> None:
    assert geo._key(a) == geo._key(b)


@pytest.mark.parametrize("text", ["日本", "中国", "ελλαδα", "россия", "ไทย"])
def test_letters_of_every_script_are_kept(text: str) -> None:
    assert geo._key(text) == text


def test_vowel_signs_of_other_scripts_are_kept() -> None:
    # Hindi Togo and Tonga differ only in their vowel signs (combining marks).
    assert geo._key("टोगो") != geo._key("टोंगा")
