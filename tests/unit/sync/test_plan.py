"""Planning is set arithmetic on records, checked against Python sets."""

from __future__ import annotations

import hashlib
import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.sync.plan import (
    Delta,
    decode_record,
    encode_record,
    hash_keys,
    plan_delta,
    plan_from_delta,
    plan_streamed,
    record_hashes,
    record_text,
)

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


# --- the streamed plan (what the runner uses) agrees with the reference ----------------------

digests = st.sets(st.integers(0, 40).map(lambda i: hashlib.sha256(str(i).encode()).hexdigest()))


def keyed(items: list[str], owners: list[int]) -> pl.DataFrame:
    frame = pl.DataFrame({"record_hash": items, "owner": owners}, schema=SCHEMA)
    return frame.select(*hash_keys(), "owner")


def batches(items: set[str], size: int) -> list[pl.DataFrame]:
    ordered = sorted(items)
    return [
        pl.DataFrame({"record_hash": ordered[i : i + size]}, schema={"record_hash": pl.String})
        for i in range(0, len(ordered), size)
    ]


SCHEMA = {"record_hash": pl.String, "owner": pl.Int64}


@settings(max_examples=200, deadline=None)
@given(
    current=st.lists(digests, max_size=4),
    snapshot=digests,
    size=st.integers(1, 7),
    again=st.integers(0, 5),
)
def test_the_streamed_plan_equals_the_reference(
    current: list[set[str]], snapshot: set[str], size: int, again: int
) -> None:
    # Each owner's records; a record shared by two owners stays current while either remains.
    items = [(h, owner) for owner, hashes in enumerate(current) for h in sorted(hashes)]
    rows = pl.DataFrame(items, schema=SCHEMA, orient="row")
    held = pl.DataFrame({"record_hash": list(snapshot)}, schema={"record_hash": pl.String})
    reference = plan_delta(rows.lazy(), held.lazy())
    # The snapshot's parts may each hold a record: some hashes come again in later batches.
    repeated = batches(set(sorted(snapshot)[:again]), size)
    streamed = plan_streamed(
        keyed([h for h, _ in items], [o for _, o in items]), batches(snapshot, size) + repeated
    )
    removed = streamed.removes["record_hash"].to_list()
    assert len(removed) == len(set(removed))
    assert set(removed) == set(reference.removes["record_hash"])
    added = rows.select(*hash_keys(), "owner").join(
        reference.adds.select(*hash_keys(), "owner"), on=["k1", "k2", "owner"], how="semi"
    )
    assert sorted(streamed.adds.rows()) == sorted(added.rows())
    assert (streamed.unchanged, streamed.held) == (reference.unchanged, reference.held)


def test_records_sharing_their_first_64_bits_are_still_told_apart() -> None:
    # The binary search is on the first 64 bits; a collision there falls back to a hash join.
    one, two, three = ("0" * 16 + c * 48 for c in "abc")
    plan = plan_streamed(keyed([one, three], [1, 2]), batches({one, two}, 10))
    assert plan.removes["record_hash"].to_list() == [two]
    assert plan.adds["owner"].to_list() == [2]
    assert plan.unchanged == 1
    held_first = plan_streamed(keyed([two], [1]), batches({one, two, three}, 2))
    assert sorted(held_first.removes["record_hash"]) == [one, three]
    assert held_first.adds.is_empty()
    twice = plan_streamed(keyed([two], [1]), batches({one, two, three}, 2) + batches({one}, 1))
    assert sorted(twice.removes["record_hash"]) == [one, three]
    assert (twice.unchanged, twice.held) == (1, 3)


def test_the_streamed_plan_of_an_empty_snapshot_adds_everything() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    plan = plan_streamed(keyed([digest, digest], [1, 2]), [])
    assert plan.adds["owner"].to_list() == [1, 2]
    assert plan.removes.is_empty()
    assert (plan.unchanged, plan.held) == (0, 0)


def test_the_keys_are_the_first_128_bits_of_the_hash() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    keys = pl.DataFrame({"record_hash": [digest]}).select(hash_keys()).row(0)
    assert "".join(f"{k:016x}" for k in keys) == digest[:32]


# Text without surrogates (the importer only reads valid UTF-8), quotes and controls included.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
digests = st.text("0123456789abcdef", min_size=64, max_size=64)


@given(st.lists(st.tuples(st.sampled_from(["EMAIL", "PHONE", "MADID", "FN"]), texts | digests)))
def test_record_text_is_the_canonical_json_whatever_the_values(
    pairs: list[tuple[str, str]],
) -> None:
    expected = json.dumps(sorted(pairs), separators=(",", ":"), ensure_ascii=False)
    assert record_text(pairs) == expected
    assert decode_record(record_text(pairs)) == sorted(pairs)


@given(st.lists(st.lists(st.tuples(texts, texts), max_size=3), max_size=20))
def test_record_hashes_in_a_column_equal_encode_record(
    records: list[list[tuple[str, str]]],
) -> None:
    column = pl.Series("t", [record_text(pairs) for pairs in records], dtype=pl.String)
    hashed = pl.select(record_hashes(pl.lit(column))).to_series().to_list()
    assert hashed == [encode_record(pairs)[0] for pairs in records]


def named_keys(records: list[tuple[str, int]]) -> pl.DataFrame:
    """(`k1`, `k2`, `owner`) of records named by short strings, as the runner holds them."""
    hexes = [hashlib.sha256(name.encode()).hexdigest() for name, _ in records]
    frame = pl.DataFrame(
        {"record_hash": hexes, "owner": [owner for _, owner in records]},
        schema={"record_hash": pl.String, "owner": pl.Int64},
    )
    return frame.select(*hash_keys(), "owner")


names = st.text("abcdefgh", min_size=1, max_size=2)


@given(
    st.dictionaries(st.integers(0, 8), st.sets(names, max_size=3), max_size=8),
    st.sets(st.integers(0, 8)),
    st.dictionaries(st.integers(0, 12), st.sets(names, max_size=3), max_size=6),
)
def test_plan_from_a_converged_state_equals_the_plan_against_the_snapshot(
    state: dict[int, set[str]], changed: set[int], fresh: dict[int, set[str]]
) -> None:
    """Owners in `changed` or `fresh` were prepared again (or left, when only in `changed`)."""
    kept = {o: r for o, r in state.items() if o not in changed and o not in fresh}
    gone = {o: r for o, r in state.items() if o not in kept}
    rows = lambda by_owner: [(n, o) for o, rs in by_owner.items() for n in sorted(rs)]  # noqa: E731
    held_keys = named_keys(rows(state)).select("k1", "k2")
    current = pl.concat([named_keys(rows(kept)), named_keys(rows(fresh))])
    delta = Delta(held_keys, named_keys(rows(gone)).select("k1", "k2"), named_keys(rows(fresh)))
    fast = plan_from_delta(delta, current)
    snapshot = sorted({hashlib.sha256(n.encode()).hexdigest() for n, _ in rows(state)})
    held = pl.DataFrame({"record_hash": snapshot}, schema={"record_hash": pl.String})
    reference = plan_streamed(current, [held])
    as_keys = lambda f: set(f.select("k1", "k2").iter_rows())  # noqa: E731
    assert as_keys(fast.adds) == as_keys(reference.adds)
    removed = pl.DataFrame({"record_hash": reference.removes["record_hash"]}).select(*hash_keys())
    assert as_keys(fast.removes) == as_keys(removed)
    assert (fast.unchanged, fast.held) == (reference.unchanged, reference.held)
