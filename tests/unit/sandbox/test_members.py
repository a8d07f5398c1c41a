"""The compact member store: row encoding, exact-row removal, deterministic matching."""

from __future__ import annotations

import hashlib
from typing import NoReturn

import pytest

from audience_sync.sandbox.members import (
    KeyKind,
    KeySpace,
    KeySpec,
    MemberStore,
    all_hex,
    match_point,
)
from audience_sync.sandbox.meta_graph import META_KEYS
from audience_sync.sandbox.tiktok_common import TIKTOK_KEYS

from .conftest import digests, sha

KEYS = KeySpace([KeySpec("EMAIL", KeyKind.SHA256), KeySpec("MADID", KeyKind.RAW)])


def test_a_row_encodes_the_same_whatever_the_key_order() -> None:
    email = sha("a@b.co")
    assert KEYS.encode([("EMAIL", email), ("MADID", "x")]) == KEYS.encode(
        [("MADID", "x"), ("EMAIL", email)]
    )


def test_a_single_sha256_identifier_costs_33_bytes() -> None:
    assert len(KEYS.encode([("EMAIL", sha("a"))])) == 33


def test_decoding_gives_back_the_wire_values() -> None:
    row = KEYS.encode([("EMAIL", sha("a").upper()), ("MADID", "ab-12")])
    assert [(spec.name, KEYS.render(spec, value)) for spec, value in KEYS.decode(row)] == [
        ("EMAIL", sha("a")),
        ("MADID", "ab-12"),
    ]


def test_re_adding_a_row_changes_nothing_but_its_time() -> None:
    store = MemberStore(KEYS, 0.7)
    rows = [KEYS.encode([("EMAIL", d)]) for d in digests(10)]
    assert store.add(rows, 1.0) == 10
    assert store.add(rows, 2.0) == 0
    assert len(store) == 10
    assert store.remove_added_before(2.0) == 0


def test_the_fast_match_path_agrees_with_the_reference_rule() -> None:
    store = MemberStore(KEYS, 0.7)
    threshold = int(0.7 * 2**32)
    for digest in digests(2000):
        row = KEYS.encode([("EMAIL", digest)])
        reference = int(digest[:8], 16)  # the first four bytes of the digest
        assert store.row_matches(row) == (reference < threshold)


def test_the_matched_count_follows_adds_removes_and_a_new_rate() -> None:
    store = MemberStore(KEYS, 0.7)
    rows = [KEYS.encode([("EMAIL", d)]) for d in digests(1000)]
    store.add(rows, 1.0)
    expected = sum(1 for r in rows if store.row_matches(r))
    assert store.matched == expected
    store.remove(rows[:100])
    assert store.matched == sum(1 for r in rows[100:] if store.row_matches(r))
    store.set_match_rate(0.0)
    assert store.matched == 0


def test_a_raw_identifier_matches_by_the_hash_of_its_value() -> None:
    spec = KEYS.specs[1]
    assert match_point(spec, b"ab-12") == int.from_bytes(
        hashlib.sha256(b"ab-12").digest()[:4], "big"
    )


def test_name_fields_alone_never_match_in_meta() -> None:
    store = MemberStore(META_KEYS, 1.0)
    assert not store.row_matches(META_KEYS.encode([("FN", sha("mary"))]))
    assert store.row_matches(META_KEYS.encode([("FN", sha("mary")), ("EMAIL", sha("m@x.co"))]))


def _reference_matches(store: MemberStore, row: bytes) -> bool:
    """The matching rule as the module states it, identifier by identifier."""
    threshold = int(store.match_rate * 2**32)
    return any(
        spec.identifying and match_point(spec, value) < threshold
        for spec, value in store.keyspace.decode(row)
    )


def test_multi_key_rows_match_by_the_reference_rule() -> None:
    store = MemberStore(META_KEYS, 0.3)
    rows = [
        META_KEYS.encode(
            [("FN", sha(f"n{i}")), ("MADID", f"m{i}"), ("EXTERN_ID", f"x{i}"), ("ZIP", sha("1"))]
            + ([("PHONE", sha(f"p{i}"))] if i % 2 else [])
            + ([("EMAIL", sha(f"e{i}"))] if i % 3 else [])
        )
        for i in range(3000)
    ]
    rows.append(META_KEYS.encode([("ZIP", sha("only an aux key"))]))
    assert [store.row_matches(r) for r in rows] == [_reference_matches(store, r) for r in rows]


def test_adding_in_bulk_counts_a_repeated_row_once_and_keeps_first_seen_order() -> None:
    store = MemberStore(KEYS, 0.5)
    rows = [KEYS.encode([("EMAIL", d)]) for d in digests(50)]
    assert store.add(rows[:10], 1.0) == 10
    assert store.add(rows[5:] + rows[20:30], 2.0) == 40
    assert list(store) == rows
    assert store.matched == sum(map(store.row_matches, rows))
    assert store.remove_added_before(2.0) == 5  # the re-added rows' time was refreshed


def test_add_and_match_counts_matches_per_row_sent() -> None:
    store = MemberStore(KEYS, 0.5)
    rows = [KEYS.encode([("EMAIL", d)]) for d in digests(40)]
    store.add(rows[:10], 1.0)
    sent = rows[5:] + rows[5:15]
    new, matched = store.add_and_match(sent, 2.0)
    assert new == 30
    assert matched == sum(map(store.row_matches, sent))
    assert store.matched == sum(map(store.row_matches, rows))


def test_removing_a_row_sent_twice_removes_it_once() -> None:
    store = MemberStore(KEYS, 0.5)
    rows = [KEYS.encode([("EMAIL", d)]) for d in digests(20)]
    store.add(rows, 1.0)
    assert store.remove(rows[:5] + rows[:5] + [KEYS.encode([("EMAIL", sha("absent"))])]) == 5
    assert list(store) == rows[5:]
    assert store.matched == sum(map(store.row_matches, rows[5:]))


@pytest.mark.parametrize(
    ("values", "lengths", "expected"),
    [
        (["ab" * 32, "AB" * 32], {64}, True),
        (["ab" * 32, ""], {0, 64}, True),
        (["ab" * 32, ""], {64}, False),
        (["ab" * 31 + " a"], {64}, False),  # `fromhex` would skip the space
        (["ab" * 31 + "a\n"], {64}, False),
        (["g" * 64], {64}, False),
        (["é" * 64], {64}, False),
        (["ab" * 32, 5], {64}, False),
        (["ab" * 32, None], {64}, False),
        (["abc", "d" * 61], {64}, False),  # hex, but not each of a wanted length
        (["a" * 63], {64}, False),
    ],
)
def test_a_column_of_hex_digests_is_checked_as_each_value_would_be(
    values: list[object], lengths: set[int], expected: bool
) -> None:
    assert all_hex(values, lengths) is expected


def test_rows_built_as_hex_text_are_the_encoded_rows() -> None:
    email = sha("a@b.co")
    text = KEYS.hex_prefix("EMAIL") + email.upper() + KEYS.raw_hex("MADID", "ab-é".encode())
    assert KEYS.encode_hex([text]) == [KEYS.encode([("MADID", "ab-é"), ("EMAIL", email)])]


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize(
    "rows",
    [
        [META_KEYS.encode([("EMAIL", d)]) for d in digests(300)],
        [META_KEYS.encode([(("EMAIL", "PHONE")[i % 2], d)]) for i, d in enumerate(digests(300))],
        [META_KEYS.encode([("FN", d)]) for d in digests(300)],  # one digest, not identifying
        [META_KEYS.encode([("MADID", f"{i:031d}")]) for i in range(300)],  # raw, also 33 bytes
        [META_KEYS.encode([("EMAIL", d), ("FN", d)]) for d in digests(300)],
        [META_KEYS.encode([("EMAIL", d)]) for d in digests(300)]
        + [META_KEYS.encode([("MADID", "m")])],
        [TIKTOK_KEYS.encode([("IDFA_MD5", d[:32])]) for d in digests(300)],
        [],
    ],
)
def test_matching_a_batch_agrees_with_row_matches(rows: list[bytes], rate: float) -> None:
    keyspace = TIKTOK_KEYS if rows and rows[0][0] == TIKTOK_KEYS.codes["IDFA_MD5"] else META_KEYS
    store = MemberStore(keyspace, rate)
    expected = [store.row_matches(row) for row in rows]
    assert list(store.matches(rows)) == expected
    assert store.count_matching(rows) == sum(expected)
    hits = [row for row, hit in zip(rows, expected, strict=True) if hit]
    assert list(store.matching(rows)) == hits


class _NoWalk(dict[bytes, float]):
    """A member dict that fails when walked: a request must cost its batch, not the audience."""

    def __iter__(self) -> NoReturn:
        raise AssertionError("walked every held row")

    def keys(self) -> NoReturn:
        raise AssertionError("walked every held row")

    def items(self) -> NoReturn:
        raise AssertionError("walked every held row")


def test_adding_and_removing_a_batch_does_not_walk_the_held_rows() -> None:
    store = MemberStore(KEYS, 0.5)
    rows = [KEYS.encode([("EMAIL", d)]) for d in digests(30)]
    store.add(rows[:20], 1.0)
    store._members = _NoWalk(store._members)
    assert store.add(rows[10:25], 2.0) == 5
    assert store.add_and_match(rows[20:], 2.0)[0] == 5
    assert store.remove(rows[:5] + rows[:5]) == 5
    assert len(store) == 25
