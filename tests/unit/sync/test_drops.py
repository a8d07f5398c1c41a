"""A member's dropped values, kept in the member state as text, add back up to the same counts."""

from __future__ import annotations

from collections import Counter

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.sync.members import SUMMARY_SCHEMA, drop_counts, drop_summary, drop_totals

REASONS = ["invalid_email", "invalid_phone", "zeroed_maid", "invalid_mobile_id"]


FIELDS = ["email", "phone", "mobile_id"]
SCHEMA = {"owner": pl.Int64, "field": pl.String, "reason": pl.String}


@given(
    st.lists(
        st.tuples(st.integers(1, 6), st.sampled_from(FIELDS), st.sampled_from(REASONS)),
        max_size=40,
    )
)
def test_the_summaries_add_up_to_the_dropped_values(drops: list[tuple[int, str, str]]) -> None:
    frame = pl.DataFrame(drops, schema=SCHEMA, orient="row")
    summary = drop_summary(frame)
    assert summary.schema == pl.Schema(SUMMARY_SCHEMA)
    assert summary["owner"].is_unique().all()
    assert drop_totals(summary["dropped"]) == Counter(reason for _, _, reason in drops)
    assert drop_counts(summary["dropped"]) == Counter((f, r) for _, f, r in drops)


def test_a_member_without_drops_has_no_summary() -> None:
    frame = pl.DataFrame(
        {
            "owner": [1, 1, 2],
            "field": ["mobile_id", "email", "email"],
            "reason": ["zeroed_maid", "invalid_email", "invalid_email"],
        },
        schema=SCHEMA,
    )
    summary = drop_summary(frame)
    assert summary.rows() == [
        (1, "email:invalid_email:1,mobile_id:zeroed_maid:1"),
        (2, "email:invalid_email:1"),
    ]
    assert drop_totals(pl.Series([None, None], dtype=pl.String)) == Counter()
