"""A member's dropped values, kept in the member state as text, add back up to the same counts."""

from __future__ import annotations

from collections import Counter

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.sync.members import SUMMARY_SCHEMA, drop_summary, drop_totals

REASONS = ["invalid_email", "invalid_phone", "zeroed_maid", "invalid_mobile_id"]


@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(REASONS)), max_size=40))
def test_the_summaries_add_up_to_the_dropped_values(drops: list[tuple[int, str]]) -> None:
    frame = pl.DataFrame(drops, schema={"owner": pl.Int64, "reason": pl.String}, orient="row")
    summary = drop_summary(frame)
    assert summary.schema == pl.Schema(SUMMARY_SCHEMA)
    assert summary["owner"].is_unique().all()
    assert drop_totals(summary["dropped"]) == Counter(reason for _, reason in drops)


def test_a_member_without_drops_has_no_summary() -> None:
    frame = pl.DataFrame({"owner": [1, 1, 2]}, schema={"owner": pl.Int64}).with_columns(
        reason=pl.Series(["zeroed_maid", "invalid_email", "invalid_email"])
    )
    summary = drop_summary(frame)
    assert summary.rows() == [(1, "invalid_email:1,zeroed_maid:1"), (2, "invalid_email:1")]
    assert drop_totals(pl.Series([None, None], dtype=pl.String)) == Counter()
