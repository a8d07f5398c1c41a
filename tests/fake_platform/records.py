"""The fake platform's records in columns: one record a value, as `prepare` makes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from audience_sync.connectors.columnar import PAIRS, Members, RecordShape, Sent, keyed
from audience_sync.identifiers import Field

from .connector import KEYS


class FakeShape(RecordShape):
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
