"""The compact member store: row encoding, exact-row removal, deterministic matching."""

from __future__ import annotations

import hashlib

from audience_sync.sandbox.members import KeyKind, KeySpace, KeySpec, MemberStore, match_point
from audience_sync.sandbox.meta_graph import META_KEYS

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
