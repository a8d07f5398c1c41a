"""A run keeps its first entries, masked, and exact counts past the bound (sync/diagnostics.py)."""

from __future__ import annotations

import uuid
from collections import Counter

import polars as pl

from audience_sync.cli.audiences import _print_diagnostics
from audience_sync.cli.common import out
from audience_sync.connectors.columnar import DROPS
from audience_sync.store.diagnostics import Entry
from audience_sync.sync.diagnostics import Diagnostics, Report


def drops(n: int, start: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "owner": list(range(start, start + n)),
            "field": ["email"] * n,
            "reason": ["invalid_email"] * n,
            "value": [f"person.number.{i}.example.com" for i in range(start, start + n)],
        },
        schema=DROPS,
    )


def test_the_first_entries_are_kept_masked_up_to_the_bound() -> None:
    found = Diagnostics(limit=5)
    found.add_drops(drops(3))
    found.add_drops(drops(4, start=3))
    found.add_drops(drops(2, start=7))
    entries = found.entries()
    assert entries["owner"].to_list() == [0, 1, 2, 3, 4]
    assert entries["masked_value"].to_list() == ["p***m"] * 5
    assert "value" not in entries.columns
    assert found.room == 0


def test_the_counts_are_exact_past_the_bound_and_say_so() -> None:
    found = Diagnostics(limit=2)
    found.add_drops(drops(3))
    found.count(Counter({("email", "invalid_email"): 3}))
    found.add_refused(pl.Series([7, 8], dtype=pl.Int64))
    assert found.summary() == {
        "counts": [
            {"field": "email", "reason": "invalid_email", "count": 3},
            {"field": None, "reason": "refused", "count": 2},
        ],
        "entries": 2,
        "max_entries": 2,
        "truncated": True,
    }


def test_nothing_left_out_is_not_truncated() -> None:
    found = Diagnostics(limit=10)
    found.add_drops(drops(3))
    found.count(Counter({("email", "invalid_email"): 3}))
    found.add_refused(pl.Series([9], dtype=pl.Int64))
    assert found.entries()["reason"].to_list() == ["invalid_email"] * 3 + ["refused"]
    assert found.summary()["truncated"] is False


def test_the_cli_prints_ids_and_masks_that_look_like_markup_as_they_are() -> None:
    report = Report(
        job_id=uuid.uuid4(),
        counts=[{"field": "external_id", "reason": "invalid_external_id", "count": 1}],
        truncated=False,
        max_entries=10_000,
        matching=1,
        entries=[Entry("[bold]P1", "external_id", "invalid_external_id", "[***]")],
    )
    with out.capture() as captured:
        _print_diagnostics(report)
    assert "[bold]P1" in captured.get()
    assert "[***]" in captured.get()
