"""Demo data: deterministic, realistic and messy, with its three segments."""

from __future__ import annotations

import csv
from pathlib import Path

from audience_sync.sources.demo import DEMO_SEGMENTS, generate_rows, pick_segments, write_demo_files


def test_the_same_seed_gives_the_same_rows() -> None:
    assert list(generate_rows(200, seed=7)) == list(generate_rows(200, seed=7))
    assert list(generate_rows(200, seed=7)) != list(generate_rows(200, seed=8))


def test_segments_have_the_specs_sizes_and_high_value_never_churns() -> None:
    members = pick_segments(10_000)
    assert {name: len(ids) for name, ids in members.items()} == DEMO_SEGMENTS
    assert not set(members["High Value Customers"]) & set(members["At Risk Churning"])


def test_the_data_is_messy_like_real_cdp_data() -> None:
    rows = list(generate_rows(5_000))
    emails = [r["email"] for r in rows if r["email"]]
    phones = [r["phone"] for r in rows if r["phone"]]
    assert any(e != e.strip() for e in emails), "stray whitespace"
    assert any(e != e.lower() for e in emails), "mixed case"
    assert any("@" not in e for e in emails), "some invalid emails"
    assert any(";" in e for e in emails), "several emails in one cell"
    assert any(p.startswith("+") for p in phones)
    assert any(p.startswith("00") for p in phones)
    assert any(p.startswith("(") for p in phones), "national formats"
    assert any(r["mobile_id"].startswith("00000000-") for r in rows), "zeroed MAIDs"
    assert any(not r["first_name"].isascii() for r in rows), "accented names"
    assert len({r["profile_id"] for r in rows}) == len(rows)


def test_demo_files_hold_every_profile_and_each_segment(tmp_path: Path) -> None:
    files = write_demo_files(tmp_path)
    with files.profiles.open(encoding="utf-8") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == 10_000
    assert set(files.segments) == set(DEMO_SEGMENTS)
