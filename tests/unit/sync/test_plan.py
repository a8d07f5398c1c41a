"""Planning is set arithmetic on (key, value) pairs, checked against Python sets."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.sync.plan import plan_delta, plan_replace

pairs = st.sets(st.tuples(st.sampled_from(["EMAIL", "PHONE", "MADID"]), st.text("abc", max_size=3)))


def frame(items: set[tuple[str, str]] | list[tuple[str, str]]) -> pl.LazyFrame:
    return pl.DataFrame(
        list(items), schema={"key": pl.String, "value": pl.String}, orient="row"
    ).lazy()


def as_set(df: pl.DataFrame) -> set[tuple[str, str]]:
    return set(df.iter_rows())


@settings(max_examples=200, deadline=None)
@given(current=pairs, snapshot=pairs)
def test_the_plan_equals_set_differences(
    current: set[tuple[str, str]], snapshot: set[tuple[str, str]]
) -> None:
    plan = plan_delta(frame(current), frame(snapshot))
    assert as_set(plan.adds) == current - snapshot
    assert as_set(plan.removes) == snapshot - current
    assert plan.unchanged == len(current & snapshot)


def test_an_identifier_shared_by_two_members_stays_while_one_remains() -> None:
    # Two members share an email; one leaves: the email is still current, so it is not removed.
    current = [("EMAIL", "shared"), ("EMAIL", "shared"), ("PHONE", "p2")]
    snapshot = {("EMAIL", "shared"), ("PHONE", "p1"), ("PHONE", "p2")}
    plan = plan_delta(frame(current), frame(snapshot))
    assert as_set(plan.removes) == {("PHONE", "p1")}
    assert plan.adds.is_empty()


def test_counts_by_key_summarise_the_plan() -> None:
    plan = plan_delta(frame({("EMAIL", "a"), ("EMAIL", "b")}), frame({("PHONE", "p")}))
    assert plan.counts_by_key() == {
        "EMAIL": {"adds": 2, "removes": 0},
        "PHONE": {"adds": 0, "removes": 1},
    }


def test_a_replace_sends_every_current_pair_once() -> None:
    plan = plan_replace(frame([("EMAIL", "a"), ("EMAIL", "a")]))
    assert as_set(plan.adds) == {("EMAIL", "a")}
    assert plan.removes.is_empty()
