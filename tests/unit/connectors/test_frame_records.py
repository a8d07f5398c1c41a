"""Records kept in columns (`FrameRecords`) read as the list of tuples they replace, and a
connector sends the very bodies from them that it sends from the list."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import orjson
import polars as pl
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from audience_sync.config import Settings
from audience_sync.connectors import connector_for
from audience_sync.connectors.base import FrameRecords, Operation
from audience_sync.connectors.http import Credentials
from audience_sync.domain.models import SyncPlatform
from audience_sync.sync.plan import decode_record, record_text
from audience_sync.testing import FakeTime

ROWS = [("EMAIL_SHA256", "a"), ("EMAIL_SHA256", "b"), ("PHONE_SHA256", "c")]


def frame_records() -> FrameRecords:
    return FrameRecords(pl.DataFrame(ROWS, schema=["key", "value"], orient="row"))


def test_frame_records_read_as_a_list_of_tuples() -> None:
    records = frame_records()
    assert len(records) == 3
    assert list(records) == ROWS
    assert (records[0], records[-1]) == (ROWS[0], ROWS[-1])
    assert list(records[1:]) == ROWS[1:]
    assert list(records[1:2]) == ROWS[1:2]
    assert list(records[2:1]) == []
    assert list(records[::2]) == ROWS[::2]
    assert list(records[:10]) == ROWS
    assert isinstance(records[:2], FrameRecords)
    assert records.column("value").to_list() == ["a", "b", "c"]


def test_one_frame_record_can_be_replaced() -> None:
    records = frame_records()
    records[1] = ("EMAIL_SHA256", "spoiled")
    records[-1] = ("PHONE_SHA256", "last")
    assert list(records) == [ROWS[0], ("EMAIL_SHA256", "spoiled"), ("PHONE_SHA256", "last")]


ANSWERS: dict[SyncPlatform, dict[str, object]] = {
    SyncPlatform.SNAPCHAT: {"request_status": "SUCCESS", "users": [{}]},
    SyncPlatform.META: {"num_received": 1, "num_invalid_entries": 0},
}


def sent_bodies(platform: SyncPlatform, batch: int, texts: list[str], columns: bool) -> list[bytes]:
    """The request bodies an add of the records in `texts` sends, prepared from their text
    in columns (`columns`) or decoded one by one."""
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json=ANSWERS[platform])

    time = FakeTime()
    connector = connector_for(
        platform,
        Settings(max_batch_size=batch),
        Credentials(access_token="t"),
        ad_account_id="1",
        transport=httpx.MockTransport(answer),
        sleep=time.sleep,
        clock=time.clock,
    )
    if columns:
        prepared = connector.prepared_from_texts(pl.Series(texts, dtype=pl.String))
        assume(prepared is not None)  # texts with escapes are decoded one by one instead
        assert prepared is not None
        assert isinstance(prepared.records, FrameRecords)
    else:
        prepared = connector.prepared_from_records([decode_record(text) for text in texts])
    asyncio.run(connector.upload(Operation.ADD, "seg-1", prepared))
    return [session_free(platform, body) for body in seen]


def session_free(platform: SyncPlatform, body: bytes) -> bytes:
    """The body without Meta's session id, a random number each upload."""
    if platform is not SyncPlatform.META:
        return body
    session_id = orjson.loads(body)["session"]["session_id"]
    return body.replace(b'"session_id":%d' % session_id, b'"session_id":0')


KEYS = st.sampled_from(["EMAIL_SHA256", "PHONE_SHA256", "MOBILE_AD_ID_SHA256"])
DIGESTS = st.integers(0, 30).map(lambda n: hashlib.sha256(str(n).encode()).hexdigest())


@given(
    pairs=st.lists(st.tuples(KEYS, DIGESTS), min_size=1, max_size=40),
    batch=st.integers(1, 7),
)
@settings(max_examples=60, deadline=None)
def test_snapchat_sends_the_same_bodies_from_columns(
    pairs: list[tuple[str, str]], batch: int
) -> None:
    # Digests repeat on purpose: a batch sends each once, in the order first seen.
    texts = [record_text([pair]) for pair in pairs]
    from_columns = sent_bodies(SyncPlatform.SNAPCHAT, batch, texts, columns=True)
    assert from_columns == sent_bodies(SyncPlatform.SNAPCHAT, batch, texts, columns=False)
    for body in from_columns:
        (entry,) = orjson.loads(body)["users"]
        digests = [row[0] for row in entry["data"]]
        assert len(digests) == len(set(digests))


META_KEYS = ["EMAIL", "PHONE", "MADID", "FN", "LN", "ZIP", "CT", "ST", "COUNTRY", "EXTERN_ID"]
# Digests, and any text (non-ASCII, U+2028, DEL, quotes: those with escapes in their record's
# text are decoded one by one, and skipped here).
META_VALUES = st.one_of(DIGESTS, st.text(min_size=1, max_size=6))
LDU = ["DATA_PROCESSING_OPTIONS", "DATA_PROCESSING_OPTIONS_COUNTRY"]


@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(META_KEYS), META_VALUES, min_size=1, max_size=6),
        min_size=1,
        max_size=30,
    ),
    batch=st.integers(1, 7),
    ldu=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_meta_sends_the_same_bodies_from_columns(
    rows: list[dict[str, str]], batch: int, ldu: bool
) -> None:
    # Byte for byte: without LDU cells the rows' JSON is made in Polars, with them the rows
    # are converted (`wire_rows`) as the list's are.
    if ldu:
        rows = [{**row, LDU[0]: "LDU", LDU[1]: "1"} if i % 2 else row for i, row in enumerate(rows)]
    texts = [record_text(list(row.items())) for row in rows]
    from_columns = sent_bodies(SyncPlatform.META, batch, texts, columns=True)
    assert from_columns == sent_bodies(SyncPlatform.META, batch, texts, columns=False)
    assert sum(len(orjson.loads(body)["payload"]["data"]) for body in from_columns) == len(rows)
