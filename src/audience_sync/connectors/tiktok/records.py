"""TikTok's records in columns (`connectors.columnar`): what `TikTokAudienceConnector.prepare`
makes, for a whole batch: a row per k-th email, phone, IDFA and AAID."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from audience_sync.connectors.columnar import PAIRS, Members, RecordShape, Sent, keyed, ranked
from audience_sync.identifiers import Field

# `segment/mapping` id_schema names [SEEN: rudderlabs/rudder-transformer:
# src/v0/destinations/tiktok_audience/config.ts SHA256_TRAITS]; customer files name mobile ids
# MAID_* instead, a route this connector does not use.
SCHEMA = ("EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256")


def mobile_id_schema(kind: str | None) -> str:
    """TikTok's id schema for a mobile id: `AAID_SHA256` for a GAID, else `IDFA_SHA256`."""
    return "AAID_SHA256" if kind == "gaid" else "IDFA_SHA256"


TIKTOK_KEYS = dict(zip((Field.EMAIL, Field.PHONE), SCHEMA, strict=False))  # + mobile ids


class TikTokShape(RecordShape):
    platform = "tiktok"

    def fields(self, mobile_list: bool) -> list[Field]:
        return [Field.EMAIL, Field.PHONE, Field.MOBILE_ID]

    def pairs(
        self,
        sent: Sent,
        members: Members,
        allowed: frozenset[str],
        options: Mapping[str, Any],
        mobile_list: bool,
    ) -> pl.DataFrame:
        return tiktok_pairs(sent)


def tiktok_pairs(sent: Sent) -> pl.DataFrame:
    ids = keyed(sent.identifiers, TIKTOK_KEYS)
    kind = pl.col("kind").fill_null("")
    kinds = ids.filter(pl.col("key").is_null()).select(kind)["kind"].unique().to_list()
    schemas = {k: mobile_id_schema(k or None) for k in kinds}  # a mobile id's, by kind
    mobile = kind.replace_strict(schemas, default=None, return_dtype=pl.String)
    ids = ids.with_columns(key=pl.coalesce("key", mobile))
    return ids.with_columns(ranked(ids, "owner", "key")).select(*PAIRS)
