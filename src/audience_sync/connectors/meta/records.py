"""Meta's records in columns (`connectors.columnar`): what `MetaAudienceConnector.prepare` and
`record_pairs` make, for a whole batch. A row per k-th value of the identifying keys (EMAIL,
PHONE, MADID, EXTERN_ID), each with the member's enhanced fields (FN, LN, CT, ST, ZIP, COUNTRY,
GEN, DOBY/DOBM/DOBD) and its Limited Data Use cells."""

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
from audience_sync.domain.data_use import LDU_COLUMN, ldu_location
from audience_sync.identifiers import (
    DOB_KEYS,
    Field,
    Reason,
    date_of_birth_reason,
    expand_date_of_birth,
)

# Multi-key schema, in the order rows are built; DOBY/DOBM/DOBD come from the date of birth.
KEYS: dict[str, Field | None] = {
    "EMAIL": Field.EMAIL,
    "PHONE": Field.PHONE,
    "MADID": Field.MOBILE_ID,
    "EXTERN_ID": Field.EXTERNAL_ID,
    "FN": Field.FIRST_NAME,
    "LN": Field.LAST_NAME,
    "CT": Field.CITY,
    "ST": Field.STATE,
    "ZIP": Field.ZIP,
    "COUNTRY": Field.COUNTRY,
    "GEN": Field.GENDER,
    **dict.fromkeys(DOB_KEYS),
}
# Limited Data Use, a row's data processing options and their location (country 1 = US, state
# 1000 = California, 0 = Meta geolocates), last in the schema. In a record as text: `LDU`, `1`,
# `1000`; on the wire `["LDU"]`, 1, 1000, and `[]`, 0, 0 in rows without it. [SEEN:
# https://developers.facebook.com/docs/marketing-apis/data-processing-options (customer list
# custom audiences, country/state); the schema keys INFER: see docs/connectors.md, Evidence]
LDU_KEYS = (
    "DATA_PROCESSING_OPTIONS",
    "DATA_PROCESSING_OPTIONS_COUNTRY",
    "DATA_PROCESSING_OPTIONS_STATE",
)


def ldu_values(location: tuple[int, int] | None) -> list[list[str]]:
    """A member's LDU cells in `LDU_KEYS` order, as `prepare`'s columns hold them."""
    if location is None:
        return [[], [], []]
    return [["LDU"], [str(location[0])], [str(location[1])]]


# The wire key of each field, as the connector names it.
META_KEYS = {name: key for key, name in KEYS.items() if name is not None}
# The field a date of birth is dropped under (it is no `Field`: it expands to three keys).
BIRTH_FIELD = "date_of_birth"


class MetaShape(RecordShape):
    platform = "meta"

    def fields(self, mobile_list: bool) -> list[Field]:
        return [*META_KEYS]

    def profile_columns(self) -> tuple[str, ...]:
        return ("date_of_birth", LDU_COLUMN)

    def pairs(
        self,
        sent: Sent,
        members: Members,
        allowed: frozenset[str],
        options: Mapping[str, Any],
        mobile_list: bool,
    ) -> pl.DataFrame:
        births, unusable = _births(members.profiles, allowed)
        sent.drops = pl.concat([sent.drops, unusable])
        return meta_pairs(sent, births, meta_ldu(members.profiles, options))


def _births(profiles: pl.DataFrame, allowed: frozenset[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Meta's DOBY/DOBM/DOBD (`owner`, `key`, `value`), and the dates Meta cannot use
    (`DROPS`: not `YYYYMMDD`/`YYYY-MM-DD`, or no such day) as `invalid_date_of_birth`, as
    `records.hash_users` counts them. The rule runs once per distinct date."""
    schema = {"owner": pl.Int64, "key": pl.String, "value": pl.String}
    if "date_of_birth" not in allowed:
        return pl.DataFrame(schema=schema), pl.DataFrame(schema=DROPS)
    births = profiles.select(owner="profile_pk", birth="date_of_birth").drop_nulls("birth")
    distinct = births["birth"].unique().to_list()
    expanded = {b: expand_date_of_birth(b) for b in distinct}
    frames = [
        births.select(
            "owner",
            key=pl.lit(key),
            value=pl.col("birth").replace_strict(
                {b: parts[key] for b, parts in expanded.items() if parts},
                default=None,
                return_dtype=pl.String,
            ),
        )
        for key in DOB_KEYS
    ]
    invalid = [b for b in distinct if date_of_birth_reason(b) is Reason.INVALID_DATE_OF_BIRTH]
    unusable = births.filter(pl.col("birth").is_in(pl.Series(invalid, dtype=pl.String).implode()))
    drops = unusable.select(
        "owner",
        field=pl.lit(BIRTH_FIELD, pl.String),
        reason=pl.lit(Reason.INVALID_DATE_OF_BIRTH.value, pl.String),
        value=pl.col("birth").cast(pl.String),
    )
    return pl.concat([pl.DataFrame(schema=schema), *frames]).drop_nulls("value"), drops


def meta_pairs(sent: Sent, births: pl.DataFrame, ldu: pl.DataFrame | None = None) -> pl.DataFrame:
    ids = keyed(sent.identifiers, META_KEYS)
    ids = ids.with_columns(ranked(ids, "owner", "key"))
    rows = ids.select("owner", "slot").unique()
    extras = pl.concat([keyed(sent.attributes, META_KEYS).select(*births.columns), births])
    if ldu is not None and not ldu.is_empty():
        extras = pl.concat([extras, ldu])
    shared = rows.join(extras, on="owner", how="inner")
    return pl.concat([ids.select(*PAIRS), shared.select(*PAIRS)])


def meta_ldu(profiles: pl.DataFrame, options: Mapping[str, Any]) -> pl.DataFrame:
    """Each member's Limited Data Use cells (`owner`, `key`, `value`), as `ldu_values`
    gives them: its own choice, else the audience's; none for a member without LDU. A column
    null for everyone costs one null count."""
    schema = {"owner": pl.Int64, "key": pl.String, "value": pl.String}
    column = profiles[LDU_COLUMN]
    if column.null_count() == len(column) and ldu_location(None, options) is None:
        return pl.DataFrame(schema=schema)
    chosen = column.fill_null("")  # "": the member has none of its own
    locations = {c: ldu_location(c or None, options) for c in chosen.unique().to_list()}
    cells = {c: ldu_values(loc) for c, loc in locations.items() if loc is not None}
    rows = profiles.select(owner="profile_pk", choice=chosen).filter(
        pl.col("choice").is_in(list(cells))
    )
    frames = [
        rows.select(
            "owner",
            key=pl.lit(key),
            value=pl.col("choice").replace_strict(
                {c: v[k][0] for c, v in cells.items()}, return_dtype=pl.String
            ),
        )
        for k, key in enumerate(LDU_KEYS)
    ]
    return pl.concat([pl.DataFrame(schema=schema), *frames])
