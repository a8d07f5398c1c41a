"""Deterministic demo data: realistic, messy profiles and the spec's three segments.

Messy on purpose, like real CDP data: mixed-case emails with stray spaces and Gmail dots, phones
typed in national and international formats from several countries, accented names, a few
invalid values of every kind, zeroed mobile ids. The same seed always gives the same files.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from audience_sync.domain.profiles import PROFILE_FIELDS
from audience_sync.sources.rows import IDENTIFIER_COLUMNS

DEMO_SEED = 20261128
DEMO_PROFILES = 10_000
# The spec's three segments and their sizes.
DEMO_SEGMENTS = {
    "High Value Customers": 1_234,
    "Newsletter Subscribers": 5_678,
    "At Risk Churning": 890,
}
# Import columns (identifiers first, then profile fields) plus two traits.
COLUMNS = [
    "profile_id",
    *IDENTIFIER_COLUMNS,
    "mobile_id_kind",
    *PROFILE_FIELDS,
    "plan",
    "lifetime_value",
]

FIRST = [
    "José",
    "Zoë",
    "Anna",
    "François",
    "Søren",
    "Ángela",
    "Łukasz",
    "Mary-Jane",
    "John",
    "Émilie",
    "Chloé",
    "Björn",
    "Nuño",
    "Aiko",
    "Olivia",
    "Liam",
    "Noah",
    "Mateo",
    "Inès",
    "Raphaël",
    "Jürgen",
    "Siobhán",
    "Dmitrij",
    "Kateřina",
    "Wei",
    "Amara",
    "Yusuf",
    "Priya",
]
LAST = [
    "García",
    "Müller",
    "O'Brien",
    "Smith",
    "Dubois",
    "Nowak",
    "Johansson",
    "Rossi",
    "Nguyen",
    "Fernández",
    "Kowalski",
    "Brontë",
    "D'Angelo",
    "Schäfer",
    "Lévesque",
    "Tanaka",
    "Okafor",
    "van der Berg",
    "Jones",
    "Williams",
    "Brown",
    "Taylor",
    "Martin",
    "Novák",
    "Çelik",
]
DOMAINS = [
    "gmail.com",
    "GMail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.co.uk",
    "icloud.com",
    "example.org",
    "web.de",
    "orange.fr",
    "proton.me",
]
# (country as customers type it, region, city, state, zip maker, phone maker)
COUNTRIES = [
    ("US", "US"),
    ("usa", "US"),
    ("United States", "US"),
    ("", "US"),
    ("GB", "GB"),
    ("United Kingdom", "GB"),
    ("DE", "DE"),
    ("Germany", "DE"),
    ("fr", "FR"),
    ("France", "FR"),
    ("BR", "BR"),
    ("JPN", "JP"),
    ("Canada", "CA"),
    ("es", "ES"),
]
CITIES = {
    "US": [
        ("New York", "NY"),
        ("San Francisco", "California"),
        ("Austin", "TX"),
        ("Chicago", "Illinois"),
        ("Seattle", "WA"),
    ],
    "GB": [("London", ""), ("Manchester", ""), ("Edinburgh", "")],
    "DE": [("Berlin", "BE"), ("München", "Bayern"), ("Köln", "NRW")],
    "FR": [("Paris", ""), ("Lyon", ""), ("Saint-Étienne", "")],
    "BR": [("São Paulo", "SP"), ("Rio de Janeiro", "RJ")],
    "JP": [("Tokyo", ""), ("Ōsaka", "")],
    "CA": [("Toronto", "ON"), ("Montréal", "QC")],
    "ES": [("Madrid", ""), ("A Coruña", "")],
}
INVALID_EMAILS = ["n/a", "john.doe@", "@example.com", "jane@@example.com", "no email", "x@y"]
INVALID_PHONES = ["123", "n/a", "555-CALL-NOW", "0000", "+1 (000)"]
GENDERS = ["M", "F", "male", "Female", "f", "m", "Woman", "Man", "", "", "x", "unknown"]
PLANS = ["free", "starter", "pro", "enterprise"]


@dataclass(frozen=True, slots=True)
class DemoFiles:
    profiles: Path
    segments: dict[str, Path]


def write_demo_files(
    directory: Path, seed: int = DEMO_SEED, profiles: int = DEMO_PROFILES
) -> DemoFiles:
    """Write `profiles.csv` and one CSV per segment (a subset of the profile rows)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = list(generate_rows(profiles, seed))
    members = pick_segments(len(rows), seed)
    profile_path = directory / "profiles.csv"
    write_profiles_csv(profile_path, rows)
    segment_paths: dict[str, Path] = {}
    for name, indexes in members.items():
        path = directory / (name.lower().replace(" ", "_") + ".csv")
        write_profiles_csv(path, (rows[i] for i in indexes))
        segment_paths[name] = path
    return DemoFiles(profile_path, segment_paths)


def pick_segments(total: int, seed: int = DEMO_SEED) -> dict[str, list[int]]:
    """Row indexes per segment: high value and at-risk never overlap; newsletter overlaps both."""
    rng = random.Random(seed + 1)
    everyone = list(range(total))
    high_value = rng.sample(everyone, DEMO_SEGMENTS["High Value Customers"])
    rest = sorted(set(everyone) - set(high_value))
    at_risk = rng.sample(rest, DEMO_SEGMENTS["At Risk Churning"])
    newsletter = rng.sample(everyone, DEMO_SEGMENTS["Newsletter Subscribers"])
    return {
        "High Value Customers": sorted(high_value),
        "Newsletter Subscribers": sorted(newsletter),
        "At Risk Churning": sorted(at_risk),
    }


def generate_rows(count: int, seed: int = DEMO_SEED) -> Iterator[dict[str, str]]:
    """`count` messy profile rows, streamed (a million rows never sit in memory at once)."""
    rng = random.Random(seed)
    for number in range(1, count + 1):
        yield _row(rng, number)


def _row(rng: random.Random, number: int) -> dict[str, str]:
    country, region = rng.choice(COUNTRIES)
    city, state = rng.choice(CITIES[region])
    first, last = rng.choice(FIRST), rng.choice(LAST)
    emails = [_email(rng, first, last, number) for _ in range(2 if rng.random() < 0.08 else 1)]
    mobile_id, kind = _mobile_id(rng)
    return {
        "profile_id": f"P{number:07d}",
        "email": ";".join(emails) if rng.random() > 0.05 else "",
        "phone": _phone(rng, region) if rng.random() > 0.1 else "",
        "mobile_id": mobile_id,
        "mobile_id_kind": kind,
        "external_id": f"CUST-{number:06d}" if rng.random() < 0.6 else "",
        "first_name": _case(rng, first),
        "last_name": _case(rng, last),
        "city": city,
        "state": state,
        "zip": _zip(rng, region),
        "country": country,
        "date_of_birth": _dob(rng),
        "gender": rng.choice(GENDERS),
        "plan": rng.choice(PLANS),
        "lifetime_value": f"{rng.lognormvariate(5, 1.2):.2f}",
    }


def _case(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.1:
        return text.upper()
    if roll < 0.2:
        return f" {text.lower()} "
    return text


def _email(rng: random.Random, first: str, last: str, number: int) -> str:
    if rng.random() < 0.03:
        return rng.choice(INVALID_EMAILS)
    local = f"{_ascii(first)}.{_ascii(last)}{number}"
    domain = rng.choice(DOMAINS)
    if "gmail" in domain.lower() and rng.random() < 0.3:
        local += "+promo"
    text = f"{local}@{domain}"
    roll = rng.random()
    if roll < 0.2:
        text = text.upper()
    elif roll < 0.4:
        text = text.title()
    if rng.random() < 0.1:
        text = f"  {text} "
    return text


def _ascii(text: str) -> str:
    return "".join(c for c in text.lower() if c.isascii() and c.isalpha()) or "user"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _phone(rng: random.Random, region: str) -> str:
    if rng.random() < 0.04:
        return rng.choice(INVALID_PHONES)
    style = rng.random()
    if region in ("US", "CA"):
        area, mid, end = str(rng.randint(201, 989)), str(rng.randint(200, 999)), _digits(rng, 4)
        forms = [
            f"({area}) {mid}-{end}",
            f"{area}.{mid}.{end}",
            f"+1 {area} {mid} {end}",
            f"1-{area}-{mid}-{end}",
            f"001 {area} {mid} {end}",
            f"{area}{mid}{end}",
        ]
    elif region == "GB":
        rest = _digits(rng, 4)
        forms = [
            f"020 7946 {rest}",
            f"+44 20 7946 {rest}",
            f"0044 20 7946 {rest}",
            f"07700 900{rest[:3]}",
        ]
    elif region == "DE":
        rest = _digits(rng, 7)
        forms = [f"030 {rest}", f"+49 30 {rest}", f"0049 (0)30 {rest}", f"0151 {_digits(rng, 8)}"]
    elif region == "FR":
        pairs = " ".join(_digits(rng, 2) for _ in range(4))
        forms = [f"01 {pairs}", f"+33 1 {pairs}", f"06 {pairs}"]
    elif region == "BR":
        forms = [f"(11) 9{_digits(rng, 4)}-{_digits(rng, 4)}", f"+55 11 9{_digits(rng, 8)}"]
    elif region == "JP":
        forms = [f"03-{_digits(rng, 4)}-{_digits(rng, 4)}", f"+81 3 {_digits(rng, 8)}"]
    else:
        forms = [
            f"+34 91 {_digits(rng, 7)}",
            f"91 {_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}",
        ]
    return forms[int(style * len(forms))]


def _mobile_id(rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.55:
        return "", ""
    kind = rng.choice(["idfa", "gaid", "IDFA", "aaid", ""])
    if roll < 0.57:
        return "00000000-0000-0000-0000-000000000000", kind
    if roll < 0.59:
        return "not-a-device-id", kind
    value = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return (value.upper() if rng.random() < 0.5 else value), kind


def _zip(rng: random.Random, region: str) -> str:
    if region == "US":
        return _digits(rng, 5) if rng.random() < 0.8 else f"{_digits(rng, 5)}-{_digits(rng, 4)}"
    if region == "GB":
        return f"SW1A {rng.randint(1, 9)}AA"
    if region == "CA":
        return f"M5V {rng.randint(1, 9)}A{rng.randint(1, 9)}"
    return _digits(rng, 5)


def _dob(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return ""
    year, month, day = rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28)
    if roll < 0.32:
        return f"{year}1340"  # impossible month and day
    if roll < 0.65:
        return f"{year}{month:02d}{day:02d}"
    return f"{year}-{month:02d}-{day:02d}"


def write_profiles_csv(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """Write profile rows as an import-ready CSV, streaming."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
