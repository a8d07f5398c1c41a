"""The two writers of the stored identifiers text agree: `encode` (column-wise, the importer)
and `text_of` (one profile, for seeding), escapes included; `decode` reads both back."""

from __future__ import annotations

import polars as pl

from audience_sync.store.stored_identifiers import decode, encode, text_of

ITEMS = [
    ("email", "a@example.com", None, None),
    ("phone", "(415) 555-0123", "+14155550123", None),
    ("mobile_id", "38400000-8cf0-11bd-b23e-10b96e40000d", None, "gaid"),
    ("external_id", "x\x1by\x1fz\x1ew\x1b_", None, None),
]


def test_encode_and_text_of_write_the_same_text_and_decode_reads_it_back() -> None:
    frame = pl.DataFrame(
        [(7, *item) for item in ITEMS],
        schema=["_row", "type", "value", "e164", "kind"],
        orient="row",
    )
    (encoded,) = encode(frame, "_row")["identifiers"].to_list()
    assert encoded == text_of(ITEMS)
    stored = pl.DataFrame({"profile_pk": [7], "identifiers": [encoded]})
    assert decode(stored).drop("profile_pk").rows() == ITEMS
