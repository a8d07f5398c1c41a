"""Import as users' files really are (issue 18): null tokens, countries people write, other
delimiters and encodings, mapped columns, Parquet, pre-hashed columns, the JSON summary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from tests.integration.test_cli import Invoke, cli_on

from audience_sync.sources.importer import ImportReport, import_profiles
from audience_sync.sources.prepare import UNKNOWN_COUNTRY, Warning
from audience_sync.sources.tabular import ReadOptions
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ProfileRepository, TenantRepository

HEADER = "profile_id,email,phone,country,first_name,plan\n"


def run(factory: sessionmaker[Session], path: Path, **kwargs: object) -> ImportReport:
    kwargs.setdefault("tenant", "default")
    return import_profiles(factory, path, **kwargs)  # type: ignore[arg-type]


def stored(factory: sessionmaker[Session], profile_id: str, tenant: str = "default") -> dict:
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get(tenant).id
        repo = ProfileRepository(session, tenant_id)
        profile = repo.by_profile_id(profile_id)
        return {
            "first_name": profile.first_name,
            "country": profile.country,
            "traits": profile.traits,
            "identifiers": sorted(
                (str(i.type), i.value, i.e164) for i in repo.identifiers(profile.id)
            ),
        }


@pytest.fixture
def gb_tenant(factory: sessionmaker[Session]) -> str:
    with transaction(factory) as session:
        TenantRepository(session).create("gb", "GB shop", default_region="GB")
    return "gb"


def test_null_tokens_are_stored_as_absent(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "nulls.csv"
    path.write_text(HEADER + "P1,null,NULL,N/A,#N/A,n/a\nP2,a@x.example;None,,,None,gold\n")
    report = run(factory, path)
    assert report.ok
    assert report.counts.created == 2
    assert stored(factory, "P1") == {
        "first_name": None,
        "country": None,
        "traits": {},
        "identifiers": [],
    }
    assert stored(factory, "P2")["identifiers"] == [("email", "a@x.example", None)]


def test_a_native_country_name_dials_the_phone_in_that_country(
    factory: sessionmaker[Session], tmp_path: Path, gb_tenant: str
) -> None:
    """The issue's case: `Deutschland` on a GB tenant was stored as the UK number +4415…"""
    path = tmp_path / "de.csv"
    path.write_text(HEADER + "P1,,01511040531,Deutschland,Anna,\n")
    report = run(factory, path, tenant=gb_tenant)
    assert report.ok
    assert not report.warnings
    assert stored(factory, "P1", gb_tenant)["identifiers"] == [
        ("phone", "01511040531", "+491511040531")
    ]


def test_an_unknown_country_is_warned_and_never_guessed_for_a_national_phone(
    factory: sessionmaker[Session], tmp_path: Path, gb_tenant: str
) -> None:
    path = tmp_path / "unknown.csv"
    path.write_text(
        HEADER
        + "P1,,01511040531,Germoney,,\n"
        + "P2,,+49 151 1040531,Germoney,,\n"
        + "P3,,07700 900931,,,\n"
    )
    report = run(factory, path, tenant=gb_tenant)
    assert report.ok  # a warning, not a rejection
    assert report.warnings == {Warning("country", UNKNOWN_COUNTRY, "Germoney"): 2}
    assert stored(factory, "P1", gb_tenant)["identifiers"] == [("phone", "01511040531", None)]
    assert stored(factory, "P2", gb_tenant)["identifiers"] == [
        ("phone", "+49 151 1040531", "+491511040531")
    ]
    assert stored(factory, "P3", gb_tenant)["identifiers"] == [
        ("phone", "07700 900931", "+447700900931")
    ]


def test_a_semicolon_file_in_utf16_with_mapped_columns(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """What Excel writes in much of Europe, with the customer's own column names."""
    path = tmp_path / "excel.csv"
    text = "Kundennummer;E-Mail;Mobil;Land\r\nK1;anna@x.example;0151 1040531;Deutschland\r\n"
    path.write_bytes(text.encode("utf-16"))
    mapping = {"profile_id": "Kundennummer", "email": "E-Mail", "phone": "Mobil", "country": "Land"}
    report = run(factory, path, options=ReadOptions(mapping=mapping))
    assert report.ok
    assert report.counts.created == 1
    assert stored(factory, "K1")["identifiers"] == [
        ("email", "anna@x.example", None),
        ("phone", "0151 1040531", "+491511040531"),
    ]


def test_parquet_files_import_like_csv(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "profiles.parquet"
    pl.DataFrame(
        {
            "profile_id": ["P1", "P2"],
            "email": [["a@x.example", "b@x.example"], None],
            "lifetime_value": [12.5, None],
        }
    ).write_parquet(path)
    report = run(factory, path)
    assert report.ok
    assert (report.lines, report.counts.created) == (2, 2)
    assert stored(factory, "P1")["identifiers"] == [
        ("email", "a@x.example", None),
        ("email", "b@x.example", None),
    ]
    assert stored(factory, "P1")["traits"] == {"lifetime_value": "12.5"}


def test_pre_hashed_columns_become_identifiers_not_traits(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    digest = "5f4dcc3b5aa765d61d8327deb882cf99" * 2
    path = tmp_path / "hashed.csv"
    path.write_text(f"profile_id,email_sha256,phone_sha256\nP1,{digest},{digest.upper()}\n")
    report = run(factory, path)
    assert report.ok
    profile = stored(factory, "P1")
    assert profile["traits"] == {}
    assert profile["identifiers"] == [("email", digest, None), ("phone", digest.upper(), None)]


def test_every_line_is_accounted_for_in_the_json_summary(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [f"P{i},p{i}@x.example,,FR,Name{i},gold" for i in range(1, 11)]
    rows[3] = 'P4,"p4@x.example,,FR,Name4,gold'  # an unbalanced quote
    rows[6] = "P7,p7@x.example,,FR,Name7,gold,extra"  # one column too many
    path = tmp_path / "messy.csv"
    path.write_text(HEADER + "\n".join(rows[:5]) + "\n\n" + "\n".join(rows[5:]) + "\n")
    url = engine.url.render_as_string(hide_password=False)
    with cli_on(url, tmp_path, monkeypatch) as invoke:
        assert invoke("db", "upgrade").exit_code == 0
        result = invoke("import", "profiles", str(path), "--json")
    assert result.exit_code == 1  # some rows were rejected
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("lines", "imported", "new", "rejected", "blank")} == {
        "lines": 11,
        "imported": 8,
        "new": 8,
        "rejected": 2,
        "blank": 1,
    }
    assert [(r["line"], r["end_line"]) for r in summary["rejections"]] == [(5, 5), (9, 9)]
    assert summary["delimiter"] == ","
    assert summary["warnings"] == []


def test_a_file_split_on_the_wrong_delimiter_says_which_one_to_use(
    invoke_clean: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("profile_id;email;phone\nP1;a@x.example;\n")
    result = invoke_clean("import", "profiles", str(path), "--delimiter", ",")
    assert result.exit_code == 2
    assert "is the delimiter ';'? use --delimiter ';'" in result.output


@pytest.fixture
def invoke_clean(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Invoke]:
    with cli_on(engine.url.render_as_string(hide_password=False), tmp_path, monkeypatch) as run:
        assert run("db", "upgrade").exit_code == 0
        yield run


def test_pre_hashed_phones_are_in_hashed_exports(invoke_clean: Invoke, tmp_path: Path) -> None:
    digest = "ab" * 32
    path = tmp_path / "hashed.csv"
    path.write_text(f"profile_id,phone,phone_sha256\nP1,+44 7700 900931,{digest.upper()}\n")
    assert invoke_clean("import", "profiles", str(path), "--segment", "VIP").exit_code == 0
    result = invoke_clean(
        "segments", "export", "VIP", "--format", "json", "--identifier-types", "phone",
        "--no-traits", "--dir", str(tmp_path / "out"), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (exported,) = (tmp_path / "out").iterdir()
    (row,) = json.loads(exported.read_text())
    assert digest in row["phone"]
    assert len(row["phone"]) == 2
