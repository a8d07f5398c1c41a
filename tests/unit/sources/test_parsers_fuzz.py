"""Fuzzing the row parsers and the normalization entry points (issue 17's standing fuzz test).

Whatever a row holds, reading never raises, every good row around it is read, and a record read
is storable: it hashes, its JSON is valid (no NaN), it encodes to UTF-8 and holds no NUL. Bounded
(max_examples, no deadline) so `make test` stays fast.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audience_sync.domain.models import SyncPlatform
from audience_sync.identifiers import normalize, normalize_country, parse_phone_e164
from audience_sync.identifiers.fields import Field
from audience_sync.sources.rows import KNOWN_COLUMNS, ProfileRecord, Rejection, read_rows

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any character, plus the ones that broke rows: NUL, lone surrogates, CSV's separators.
ODD = ["\x00", "\ud800", "\udc80", "\udfff", ";", ",", '"', "\n", "\r", "\ufeff", "\u2028"]
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(ODD)), max_size=12)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**150), max_value=10**150),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
DEEP = st.integers(min_value=20, max_value=60).map(
    lambda depth: json.loads("[" * depth + "]" * depth)
)
# Plain text with one of the characters that broke rows somewhere in it.
POISON = st.builds(
    lambda head, odd, tail: head + odd + tail,
    st.text(max_size=4),
    st.sampled_from(["\x00", "\ud800", "\udc80", "\udfff"]),
    st.text(max_size=4),
)
HUGE = st.sampled_from([10**100, -(10**120), 10**4000])
KEYS = st.one_of(st.sampled_from(sorted(KNOWN_COLUMNS)), TEXT, POISON)
# A row with a profile_id (mostly a plain one): without it a row is refused before its values.
ROWS = st.builds(
    lambda profile_id, rest: {**rest, "profile_id": profile_id},
    st.one_of(st.just("B"), TEXT, POISON),
    st.dictionaries(KEYS, st.one_of(POISON, HUGE, SCALARS, VALUES, DEEP), max_size=4),
)


def good(number: int) -> dict[str, Any]:
    return {"profile_id": f"GOOD-{number}", "email": f"g{number}@example.com", "plan": "gold"}


def assert_storable(record: ProfileRecord) -> None:
    """What the writer and both databases need of a record."""
    record.content_hash("US")
    values = [record.profile_id, record.fields, [i.value for i in record.identifiers]]
    json.dumps([*values, record.traits], allow_nan=False, ensure_ascii=False).encode("utf-8")
    assert not any("\x00" in text for text in strings([*values, record.traits]))


def strings(value: Any) -> list[str]:
    """Every string in a JSON value, keys included (PostgreSQL refuses a NUL in any)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value.keys(), *(s for v in value.values() for s in strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def read_good(data: bytes, fmt: str) -> list[str]:
    results = list(read_rows(io.BytesIO(data), fmt))
    assert all(isinstance(r, ProfileRecord | Rejection) for r in results)
    records = [r for r in results if isinstance(r, ProfileRecord)]
    for record in records:
        assert_storable(record)
    return [r.profile_id for r in records if r.profile_id.startswith("GOOD-")]


@FUZZ
@given(bad=st.lists(st.one_of(ROWS, VALUES), max_size=4))
@example(bad=[{"profile_id": "B", "email": "\ud800"}, {"profile_id": "B", "plan": "a\x00b"}])
@example(bad=[{"profile_id": "B", "score": float("nan")}, {"profile_id": "B", "n": 10**200}])
def test_any_json_lines_row_is_read_or_rejected_and_the_good_rows_around_it_are_read(
    bad: list[Any],
) -> None:
    lines = []
    for number, row in enumerate(bad):
        lines += [json.dumps(good(number)), json.dumps(row)]  # ASCII: "\ud800" as an escape
    lines.append(json.dumps(good(len(bad))))
    data = "\n".join(lines).encode() + b"\n"
    assert read_good(data, "jsonl") == [f"GOOD-{n}" for n in range(len(bad) + 1)]


@FUZZ
@given(bad=st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=4))
@example(bad=[b'{"profile_id":"B","n":' + b"9" * 5000 + b"}"])  # the cases
@example(bad=[b'{"profile_id":"B","n":' + b"[" * 3000 + b"]" * 3000 + b"}"])
@example(bad=[b'{"profile_id":"B","n":"\\ud800"}', b'{"profile_id":"B","n":"\\u0000"}'])
def test_any_bytes_on_a_json_lines_line_never_lose_a_good_row(bad: list[bytes]) -> None:
    lines = []
    for number, raw in enumerate(bad):
        lines += [json.dumps(good(number)).encode(), raw]
    lines.append(json.dumps(good(len(bad))).encode())
    assert read_good(b"\n".join(lines) + b"\n", "jsonl") == [
        f"GOOD-{n}" for n in range(len(bad) + 1)
    ]


CSV_HEADER = ["profile_id", "email", "phone", "city", "consent_ad_user_data", "plan"]
CSV_GOOD = ["B", "b@example.com", "", "Paris", "granted", "gold"]
CSV_TEXT = st.one_of(
    st.text(
        st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(ODD[:1] + ODD[4:])),
        max_size=12,
    ),
    st.builds(lambda head, tail: head + "\x00" + tail, st.text(max_size=4), st.text(max_size=4)),
).filter(lambda cell: not any("\ud800" <= c <= "\udfff" for c in cell))
# A good row of the header's width but for one odd cell.
CSV_ROWS = st.builds(
    lambda column, cell: [cell if k == column else v for k, v in enumerate(CSV_GOOD)],
    st.integers(min_value=0, max_value=len(CSV_HEADER) - 1),
    CSV_TEXT,
)
# Raw bytes without a quote: an unclosed quote rightly joins the next lines into one cell.
CSV_BYTES = st.binary(max_size=40).filter(lambda b: b"\n" not in b and b'"' not in b)


def csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode()


@FUZZ
@given(
    bad=st.lists(
        st.one_of(
            CSV_ROWS.map(csv_line),
            st.lists(CSV_TEXT, max_size=8).map(csv_line),
            CSV_BYTES.map(lambda b: b + b"\n"),
        ),
        max_size=4,
    )
)
@example(bad=[csv_line([*CSV_GOOD[:5], "go\x00ld"]), csv_line(["B", "", "", "Pa\x00ris", "", ""])])
def test_any_csv_row_is_read_or_rejected_and_the_good_rows_around_it_are_read(
    bad: list[bytes],
) -> None:
    data = csv_line(CSV_HEADER)
    for number, raw in enumerate(bad):
        data += csv_line([f"GOOD-{number}", "g@example.com", "", "Paris", "", "gold"]) + raw
    data += csv_line([f"GOOD-{len(bad)}", "g@example.com", "", "Paris", "", "gold"])
    assert read_good(data, "csv") == [f"GOOD-{n}" for n in range(len(bad) + 1)]


@FUZZ
@given(value=TEXT, region=st.sampled_from(["US", "GB", "FR", "ZZ", ""]))
def test_normalization_entry_points_never_raise_on_a_value(value: str, region: str) -> None:
    for platform in SyncPlatform:
        for field in Field:
            normalize(value, field, platform, region or "US")
    parse_phone_e164(value, region or None)
    normalize_country(value)
