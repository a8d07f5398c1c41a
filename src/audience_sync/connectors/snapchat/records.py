"""Snapchat's records in columns (`connectors.columnar`): what
`SnapchatAudienceConnector.prepare` makes, for a whole batch: one record per value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from audience_sync.connectors.columnar import PAIRS, Members, RecordShape, Sent, keyed
from audience_sync.identifiers import Field

SCHEMAS = {
    Field.EMAIL: "EMAIL_SHA256",
    Field.PHONE: "PHONE_SHA256",
    Field.MOBILE_ID: "MOBILE_AD_ID_SHA256",
}


class SnapchatShape(RecordShape):
    platform = "snapchat"
    one_pair = True  # a record a value: its text is that pair's

    def fields(self, mobile_list: bool) -> list[Field]:
        return [*SCHEMAS]

    def pairs(
        self,
        sent: Sent,
        members: Members,
        allowed: frozenset[str],
        options: Mapping[str, Any],
        mobile_list: bool,
    ) -> pl.DataFrame:
        return snapchat_pairs(sent)


def snapchat_pairs(sent: Sent) -> pl.DataFrame:
    ids = keyed(sent.identifiers, SCHEMAS)
    return ids.with_columns(slot=pl.int_range(pl.len(), dtype=pl.Int64)).select(*PAIRS)
