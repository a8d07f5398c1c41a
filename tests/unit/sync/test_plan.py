"""Planning is set arithmetic on records, checked against Python sets."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.sync.plan import decode_record, encode_record, plan_delta

hashes = st.sets(st.text("abcdef", min_size=1, max_size=3), max_size=12)


def frame(items: list[str] | set[str], owner: int = 0) -> pl.LazyFrame:
    rows = [(h, owner) for h in items]
    return pl.DataFrame(
        rows, schema={"record_hash": pl.String, "owner": pl.Int64}, orient="row"
    ).lazy()


def as_set(df: pl.DataFrame) -> set[str]:
    return set(df["record_hash"].to_list())


@settings(max_examples=200, deadline=None)
@given(current=hashes, snapshot=hashes)
def test_the_plan_equals_set_differences(current: set[str], snapshot: set[str]) -> None:
    plan = plan_delta(frame(current), frame(snapshot))
    assert as_set(plan.adds) == current - snapshot
    assert as_set(plan.removes) == snapshot - current
    assert plan.unchanged == len(current & snapshot)


def test_a_record_two_members_share_stays_while_one_remains() -> None:
    # Two members produce the same record (a shared email); one leaves: nothing is removed.
    current = pl.concat([frame(["shared"], owner=1), frame(["shared", "p2"], owner=2)])
    plan = plan_delta(current, frame({"shared", "p1", "p2"}))
    assert as_set(plan.removes) == {"p1"}
    assert plan.adds.is_empty()


def test_adds_keep_every_owner_of_a_new_record() -> None:
    current = pl.concat([frame(["new"], owner=1), frame(["new"], owner=2)])
    plan = plan_delta(current, frame(set()))
    assert sorted(plan.adds["owner"].to_list()) == [1, 2]


def test_a_record_encodes_the_same_whatever_the_order_of_its_pairs() -> None:
    one = encode_record([("EMAIL", "a"), ("PHONE", "b")])
    two = encode_record([("PHONE", "b"), ("EMAIL", "a")])
    assert one == two
    assert decode_record(one[1]) == [("EMAIL", "a"), ("PHONE", "b")]
