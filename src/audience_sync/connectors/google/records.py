"""Google's records in columns (`connectors.columnar`): what `GoogleAudienceConnector.members`
makes, for a whole batch. One member a record: its emails, phones and address (all four parts)
up to ten, then its own consent; a mobile-id list sends mobile ids only. A member who denied
consent is left out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from audience_sync.connectors.columnar import (
    DROPS,
    PAIRS,
    Members,
    RecordShape,
    Sent,
    keyed,
    ranked,
)
from audience_sync.domain.data_use import CONSENT_FIELDS, WIRE_CONSENT, audience_consent, is_denied
from audience_sync.identifiers import Field

MAX_IDENTIFIERS = 10  # per member (docs/platforms/google.md §2.5)
# A contact member's identifiers: its emails and phones, then an address of four parts.
CONTACT_KEYS = {Field.EMAIL: "emailAddress", Field.PHONE: "phoneNumber"}
ADDRESS_FIELDS = (Field.FIRST_NAME, Field.LAST_NAME, Field.COUNTRY, Field.ZIP)  # ADDRESS_PARTS
CONTACT_FIELDS = [*CONTACT_KEYS, *ADDRESS_FIELDS]


class GoogleShape(RecordShape):
    platform = "google"
    one_value_a_key = False  # a member's one record holds all its emails and phones

    def fields(self, mobile_list: bool) -> list[Field]:
        return [Field.MOBILE_ID] if mobile_list else list(CONTACT_FIELDS)

    def profile_columns(self) -> tuple[str, ...]:
        return tuple(CONSENT_FIELDS)

    def admit(self, members: Members, options: Mapping[str, Any]) -> Members:
        profiles, identifiers, consent, denied = google_consent(
            members.profiles, members.identifiers, options
        )
        return Members(profiles, identifiers, drops=denied, own_pairs=consent)

    def pairs(
        self,
        sent: Sent,
        members: Members,
        allowed: frozenset[str],
        options: Mapping[str, Any],
        mobile_list: bool,
    ) -> pl.DataFrame:
        return google_pairs(sent, mobile_list=mobile_list)


def google_consent(
    profiles: pl.DataFrame, identifiers: pl.DataFrame, options: Mapping[str, Any]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The members Google may take and their own consent, as `GoogleAudienceConnector.members`
    decides: (profiles, identifiers) of the members kept, each kept member's own consent as
    pairs (`owner`, `slot`, `key`, `value`), and one `consent_denied` drop a member left out."""
    audience = audience_consent(options)
    columns = list(CONSENT_FIELDS)
    nobody = all(profiles[c].null_count() == len(profiles) for c in columns)
    no_pairs = pl.DataFrame(schema=PAIRS)
    if nobody and not is_denied(audience):
        return profiles, identifiers, no_pairs, pl.DataFrame(schema=DROPS)
    chosen = [pl.coalesce(pl.col(c), pl.lit(audience[c], pl.String)).alias(c) for c in columns]
    own = pl.any_horizontal([pl.col(c).is_not_null() for c in columns]).alias("own")
    marked = profiles.select("profile_pk", own, *chosen).with_columns(
        denied=pl.any_horizontal([pl.col(c) == "denied" for c in columns]).fill_null(False)
    )
    denied = marked.filter("denied")["profile_pk"]
    kept = profiles.filter(~pl.col("profile_pk").is_in(denied.implode()))
    kept_ids = identifiers.filter(~pl.col("profile_pk").is_in(denied.implode()))
    mine = marked.filter(pl.col("own") & ~pl.col("denied"))
    wire = {value: WIRE_CONSENT[value] for value in WIRE_CONSENT}
    pairs = [
        mine.select(
            owner="profile_pk",
            slot=pl.lit(0, pl.Int64),
            key=pl.lit(CONSENT_FIELDS[c]),
            value=pl.col(c).replace_strict(wire, default=None, return_dtype=pl.String),
        )
        for c in columns
    ]
    drops = pl.DataFrame(
        {"owner": denied, "field": "consent", "reason": "consent_denied", "value": None},
        schema=DROPS,
    )
    return kept, kept_ids, pl.concat([no_pairs, *pairs]).drop_nulls("value"), drops


def google_pairs(sent: Sent, *, mobile_list: bool) -> pl.DataFrame:
    """One record a member: emails, then phones, then the address, the first ten of them (the
    member's own consent, `google_consent`, is added by `columnar.record_frame` to the members
    that have a record)."""
    if mobile_list:
        items = sent.identifiers.with_columns(key=pl.lit("mobileId"), order=pl.lit(0))
    else:
        items = keyed(sent.identifiers, CONTACT_KEYS).with_columns(
            order=pl.when(pl.col("field") == Field.EMAIL.value).then(0).otherwise(1)
        )
        items = pl.concat([items.select("owner", "key", "value", "order"), _addresses(sent)])
    items = items.sort("order", maintain_order=True)  # stable: stored order within each
    kept = items.filter(ranked(items, "owner") < MAX_IDENTIFIERS)
    return kept.with_columns(slot=pl.lit(0, dtype=pl.Int64)).select(*PAIRS)


def _addresses(sent: Sent) -> pl.DataFrame:
    """`address` (`first|last|country|zip`, hashed or raw as sent) of the members with all four."""
    parts = sent.attributes.pivot(on="field", index="owner", values="value")
    names = [f.value for f in ADDRESS_FIELDS]
    for name in names:
        if name not in parts.columns:
            parts = parts.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    return parts.drop_nulls(names).select(
        "owner",
        key=pl.lit("address"),
        value=pl.concat_str(names, separator="|"),
        order=pl.lit(2),
    )
