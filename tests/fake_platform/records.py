"""The fake platform's record shape: one record a value, keyed `email_sha256` or `phone_sha256`;
`FakeShape` builds them in columns as `prepare` does one user at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from audience_sync.connectors.columnar import PAIRS, Members, RecordShape, Sent, keyed
from audience_sync.identifiers import Field

NAME = "fake"
KEYS = {Field.EMAIL: "email_sha256", Field.PHONE: "phone_sha256"}  # a record a value


class FakeShape(RecordShape):
    platform = NAME
    one_pair = True

    def fields(self, mobile_list: bool) -> list[Field]:
        return [*KEYS]

    def pairs(
        self,
        sent: Sent,
        members: Members,
        allowed: frozenset[str],
        options: Mapping[str, Any],
        mobile_list: bool,
    ) -> pl.DataFrame:
        ids = keyed(sent.identifiers, KEYS)
        return ids.with_columns(slot=pl.int_range(pl.len(), dtype=pl.Int64)).select(*PAIRS)
