"""Wire records for the sync engine, built column by column from the member frames.

A connector's `prepare` turns `AudienceUser`s into records one user at a time: right for the
connector API, too slow for a sync of a million members (~10 µs a member of Python, most of a
create's time). Here the same records come out of Polars: each field is normalized and hashed
in bulk, and the values are shaped into records per platform as `(owner, slot, key, value)`
pairs — the rows sharing an owner and a slot are one record — then written as the canonical
record text (`sync.plan.record_text`). `tests/unit/connectors/test_columnar.py` holds the two
paths equal, record for record, on random members of every platform: a change to a platform's
shape or to what it sends must be made in both, its `prepare` and here.

The shapes (each connector's `prepare` and `record_pairs` say the same in Python):
- Meta: a row per k-th value of the identifying keys (EMAIL, PHONE, MADID, EXTERN_ID), each with
  the member's enhanced fields (FN, LN, CT, ST, ZIP, COUNTRY, GEN, DOBY/DOBM/DOBD);
- Google: one member a record, its emails, phones and address (all four parts) up to ten; a
  mobile-id list sends mobile ids only;
- TikTok: a row per k-th email, phone, IDFA and AAID;
- Snapchat: one record per value (one schema per request).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from audience_sync.connectors import google, meta, snapchat, tiktok
from audience_sync.connectors.records import IDENTIFIER_FIELDS, USER_ATTRIBUTES
from audience_sync.domain.data_use import (
    CONSENT_FIELDS,
    LDU_COLUMN,
    WIRE_CONSENT,
    audience_consent,
    is_denied,
    ldu_location,
)
from audience_sync.domain.models import SyncPlatform
from audience_sync.identifiers import (
    DOB_KEYS,
    Field,
    Reason,
    date_of_birth_reason,
    expand_date_of_birth,
    hash_series_with_reasons,
    normalize_country,
    tiktok_mobile_id_schema,
)
from audience_sync.sources.members import MemberFields

PAIRS = {"owner": pl.Int64, "slot": pl.Int64, "key": pl.String, "value": pl.String}
RECORDS = {"owner": pl.Int64, "record": pl.String}
# A dropped value: its owner, field, reason and raw value (kept in memory only, for the job's
# diagnostics, which store it masked: `sync.diagnostics`).
DROPS = {"owner": pl.Int64, "field": pl.String, "reason": pl.String, "value": pl.String}
# Each platform's wire keys, as its connector's module names them.
META_KEYS = {name: key for key, name in meta.KEYS.items() if name is not None}
TIKTOK_KEYS = dict(zip((Field.EMAIL, Field.PHONE), tiktok.SCHEMA, strict=False))  # + mobile ids
# The field a date of birth is dropped under (it is no `Field`: it expands to three keys).
BIRTH_FIELD = "date_of_birth"
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'  # what JSON escapes (see `plan.record_text`)


@dataclass
class RecordFrame:
    """A batch's records (`owner`: profile pk, `record`: canonical text) and the values it
    dropped, each as (`owner`, `field`, `reason`, `value`: see `DROPS`)."""

    records: pl.DataFrame
    drops: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DROPS))

    @property
    def dropped(self) -> Counter[str]:
        """Dropped values by reason."""
        return Counter(dict(self.drops["reason"].value_counts().iter_rows()))


@dataclass
class Sent:
    """What is sent for each field: identifier values (`owner`, `field`, `value`, `kind`, in
    stored order, a value once per owner and field) and enhanced fields (`owner`, `field`,
    `value`, one per owner)."""

    identifiers: pl.DataFrame
    attributes: pl.DataFrame
    drops: pl.DataFrame  # `DROPS`: one row a dropped value


def record_frame(
    platform: SyncPlatform,
    profiles: pl.DataFrame,
    identifiers: pl.DataFrame,
    allowed: frozenset[str],
    *,
    region: str,
    mobile_list: bool = False,
    options: Mapping[str, Any] | None = None,
) -> RecordFrame:
    """The records a connector of `platform` would send for these members (see the module);
    `options` the audience's (consent, Limited Data Use: `domain.data_use`)."""
    options = options or {}
    fields = record_fields(platform, mobile_list)
    consent = pl.DataFrame(schema=PAIRS)
    denied = pl.DataFrame(schema=DROPS)
    if platform is SyncPlatform.GOOGLE:
        profiles, identifiers, consent, denied = google_consent(profiles, identifiers, options)
    sent = sent_values(profiles, identifiers, platform, fields, allowed, region)
    if not denied.is_empty():
        sent.drops = pl.concat([sent.drops, denied])
    if platform is SyncPlatform.META:
        births, unusable = _births(profiles, allowed)
        sent.drops = pl.concat([sent.drops, unusable])
        pairs = meta_pairs(sent, births, meta_ldu(profiles, options))
    elif platform is SyncPlatform.GOOGLE:
        pairs = google_pairs(sent, mobile_list=mobile_list, consent=consent)
    elif platform is SyncPlatform.TIKTOK:
        pairs = tiktok_pairs(sent)
    else:
        pairs = snapchat_pairs(sent)
    # A Google member's one record holds all its emails and phones; other records hold at
    # most one value a key.
    texts = record_texts(
        pairs,
        one_value_a_key=platform is not SyncPlatform.GOOGLE,
        one_pair=platform is SyncPlatform.SNAPCHAT,  # a record a value (`snapchat_pairs`)
    )
    return RecordFrame(texts, sent.drops)


def record_fields(platform: SyncPlatform, mobile_list: bool = False) -> list[Field]:
    """The fields a platform's records are made of (an audience's config may narrow them)."""
    if platform is SyncPlatform.META:
        return [*META_KEYS]
    if platform is SyncPlatform.GOOGLE:
        return [Field.MOBILE_ID] if mobile_list else list(google.CONTACT_FIELDS)
    if platform is SyncPlatform.TIKTOK:
        return [Field.EMAIL, Field.PHONE, Field.MOBILE_ID]
    return [*snapchat.SCHEMAS]


def member_fields(platform: SyncPlatform, mobile_list: bool = False) -> MemberFields:
    """What `record_frame` reads of the members (`sources.members.MemberFields`): the profile
    fields among the platform's, the country when phones are sent (a phone stored without
    E.164 is dialled in its profile's country), Meta's birth date and Limited Data Use, Google's
    consent; its identifier types."""
    fields = record_fields(platform, mobile_list)
    columns = [f.value for f in fields if f in USER_ATTRIBUTES]
    if Field.PHONE in fields:
        columns.append("country")
    if platform is SyncPlatform.META:
        columns += ["date_of_birth", LDU_COLUMN]
    if platform is SyncPlatform.GOOGLE:
        columns += list(CONSENT_FIELDS)
    types = tuple(f.value for f in fields if f in IDENTIFIER_FIELDS)
    return MemberFields(tuple(dict.fromkeys(columns)), types)


# --- what is sent -----------------------------------------------------------------------------


def sent_values(
    profiles: pl.DataFrame,
    identifiers: pl.DataFrame,
    platform: SyncPlatform,
    fields: Sequence[Field],
    allowed: frozenset[str],
    region: str,
) -> Sent:
    """Every allowed field of `fields` normalized and hashed for `platform`, in bulk."""
    dropped: list[pl.DataFrame] = [pl.DataFrame(schema=DROPS)]
    wanted = [f.value for f in fields if f in IDENTIFIER_FIELDS and f.value in allowed]
    rows = identifiers.with_row_index("pos").filter(pl.col("type").is_in(wanted))
    parts = [_phones(rows, profiles, platform, allowed, region, dropped)]
    for name in wanted:
        if name != Field.PHONE.value:
            chosen = rows.filter(pl.col("type") == name).with_columns(region=pl.lit("US"))
            parts.append(_hashed(chosen, Field(name), platform, dropped))
    found = pl.concat(parts).sort("pos")
    found = found.unique(["owner", "field", "value"], keep="first", maintain_order=True)
    attributes = [
        _attribute(profiles, name, platform, region, dropped)
        for name in fields
        if name in USER_ATTRIBUTES and name.value in allowed
    ]
    schema = {"owner": pl.Int64, "field": pl.String, "value": pl.String}
    return Sent(
        found.select("owner", "field", "value", "kind"),
        pl.concat([pl.DataFrame(schema=schema), *attributes]),
        pl.concat(dropped),
    )


def _phones(
    rows: pl.DataFrame,
    profiles: pl.DataFrame,
    platform: SyncPlatform,
    allowed: frozenset[str],
    default: str,
    dropped: list[pl.DataFrame],
) -> pl.DataFrame:
    """Phones: the stored E.164 form where there is one, else the raw value dialled in the
    profile's country (when the audience sends countries), else in the default region."""
    phones = rows.filter(pl.col("type") == Field.PHONE.value)
    if "country" in allowed:
        countries = profiles.select(pl.col("profile_pk"), region=pl.col("country"))
        phones = phones.join(countries, on="profile_pk", how="left", maintain_order="left")
        codes = {c: _region_of(c, default) for c in phones["region"].unique().to_list()}
        dialled = pl.col("region").replace_strict(codes, default=default, return_dtype=pl.String)
    else:
        dialled = pl.lit(default)
    stored = pl.col("e164").is_not_null()
    phones = phones.with_columns(
        value=pl.when(stored).then(pl.col("e164")).otherwise(pl.col("value")),
        region=pl.when(stored).then(pl.lit("US")).otherwise(dialled),
    )
    return _hashed(phones, Field.PHONE, platform, dropped)


def _region_of(country: str | None, default: str) -> str:
    code = normalize_country(country) if country else None
    return code.upper() if code else default


def _hashed(
    rows: pl.DataFrame, name: Field, platform: SyncPlatform, dropped: list[pl.DataFrame]
) -> pl.DataFrame:
    """`rows` (`pos`, `profile_pk`, `value`, `kind`, `region`) with `value` replaced by what is
    sent, each region's rows hashed together; dropped values counted by reason (all but
    `unsupported_by_platform`, as `connectors.records.hash_users` counts them)."""
    out = []
    for (region,), group in rows.group_by("region", maintain_order=True):
        sent, reasons = hash_series_with_reasons(group["value"], name, platform, region=str(region))
        quiet = [Reason.UNSUPPORTED.value]
        _count(group.select("profile_pk", "value"), name, reasons, quiet, dropped)
        out.append(group.with_columns(sent.alias("sent")).filter(pl.col("sent").is_not_null()))
    schema = {"pos": pl.UInt32, "owner": pl.Int64, "field": pl.String, "value": pl.String}
    frames = [
        f.select("pos", owner="profile_pk", field=pl.lit(name.value), value="sent", kind="kind")
        for f in out
    ]
    return pl.concat([pl.DataFrame(schema={**schema, "kind": pl.String}), *frames])


def _attribute(
    profiles: pl.DataFrame,
    name: Field,
    platform: SyncPlatform,
    region: str,
    dropped: list[pl.DataFrame],
) -> pl.DataFrame:
    """One enhanced field of every profile that has a usable one. Names, cities, zips and the
    rest repeat from profile to profile: each distinct value is hashed once and joined back."""
    column = name.value  # the profile column of the field's name (`zip`, not `zip_code`)
    distinct = profiles[column].drop_nulls().unique()
    sent, reasons = hash_series_with_reasons(distinct, name, platform, region=region)
    outcomes = pl.DataFrame({column: distinct, "value": sent, "reason": reasons})
    rows = profiles.select("profile_pk", column).join(outcomes, on=column, how="inner")
    quiet = [Reason.EMPTY.value, Reason.UNSUPPORTED.value]
    _count(rows.select("profile_pk", column), name, rows["reason"], quiet, dropped)
    return rows.filter(pl.col("value").is_not_null()).select(
        owner="profile_pk", field=pl.lit(name.value), value="value"
    )


def _count(
    rows: pl.DataFrame,
    name: Field,
    reasons: pl.Series,
    quiet: list[str],
    dropped: list[pl.DataFrame],
) -> None:
    """Add each dropped value (`DROPS`) to `dropped`, but those of `quiet` reasons; `rows` are
    (`profile_pk`, raw value) beside `reasons`. Only the dropped rows are kept (few)."""
    owner, value = rows.columns
    keep = reasons.is_not_null() & ~reasons.is_in(pl.Series(quiet, dtype=pl.String).implode())
    found = rows.filter(keep).select(
        owner=pl.col(owner),
        field=pl.lit(name.value, pl.String),
        reason=reasons.filter(keep),
        value=pl.col(value).cast(pl.String),
    )
    dropped.append(found)


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


# --- shapes -----------------------------------------------------------------------------------


def _keyed(frame: pl.DataFrame, keys: dict[Field, str]) -> pl.DataFrame:
    """`field` renamed to the platform's `key`."""
    mapping = {f.value: key for f, key in keys.items()}
    return frame.with_columns(
        key=pl.col("field").replace_strict(mapping, default=None, return_dtype=pl.String)
    )


def _ranked(frame: pl.DataFrame, *by: str) -> pl.Series:
    """The position of each row among the rows sharing `by` (stored order). Done by sorting:
    `pl.int_range(pl.len()).over(*by)` took 123 ms on 120,000 TikTok rows, this 11 ms."""
    order = frame.select(pl.arg_sort_by(*by, maintain_order=True)).to_series()
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    changed = [pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by]
    start = pl.when((row == 0) | pl.any_horizontal(changed)).then(row).forward_fill()
    ranks = frame.select(*by).gather(order).select(row - start).to_series()
    return ranks.gather(order.arg_sort()).alias("slot")


def meta_pairs(sent: Sent, births: pl.DataFrame, ldu: pl.DataFrame | None = None) -> pl.DataFrame:
    ids = _keyed(sent.identifiers, META_KEYS)
    ids = ids.with_columns(_ranked(ids, "owner", "key"))
    rows = ids.select("owner", "slot").unique()
    extras = pl.concat([_keyed(sent.attributes, META_KEYS).select(*births.columns), births])
    if ldu is not None and not ldu.is_empty():
        extras = pl.concat([extras, ldu])
    shared = rows.join(extras, on="owner", how="inner")
    return pl.concat([ids.select(*PAIRS), shared.select(*PAIRS)])


def tiktok_pairs(sent: Sent) -> pl.DataFrame:
    ids = _keyed(sent.identifiers, TIKTOK_KEYS)
    kind = pl.col("kind").fill_null("")
    kinds = ids.filter(pl.col("key").is_null()).select(kind)["kind"].unique().to_list()
    schemas = {k: tiktok_mobile_id_schema(k or None) for k in kinds}  # a mobile id's, by kind
    mobile = kind.replace_strict(schemas, default=None, return_dtype=pl.String)
    ids = ids.with_columns(key=pl.coalesce("key", mobile))
    return ids.with_columns(_ranked(ids, "owner", "key")).select(*PAIRS)


def snapchat_pairs(sent: Sent) -> pl.DataFrame:
    ids = _keyed(sent.identifiers, snapchat.SCHEMAS)
    return ids.with_columns(slot=pl.int_range(pl.len(), dtype=pl.Int64)).select(*PAIRS)


def meta_ldu(profiles: pl.DataFrame, options: Mapping[str, Any]) -> pl.DataFrame:
    """Each member's Limited Data Use cells (`owner`, `key`, `value`), as `meta.ldu_values`
    gives them: its own choice, else the audience's; none for a member without LDU. A column
    null for everyone costs one null count."""
    schema = {"owner": pl.Int64, "key": pl.String, "value": pl.String}
    column = profiles[LDU_COLUMN]
    if column.null_count() == len(column) and ldu_location(None, options) is None:
        return pl.DataFrame(schema=schema)
    chosen = column.fill_null("")  # "": the member has none of its own
    locations = {c: ldu_location(c or None, options) for c in chosen.unique().to_list()}
    cells = {c: meta.ldu_values(loc) for c, loc in locations.items() if loc is not None}
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
        for k, key in enumerate(meta.LDU_KEYS)
    ]
    return pl.concat([pl.DataFrame(schema=schema), *frames])


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


def google_pairs(
    sent: Sent, *, mobile_list: bool, consent: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One record a member: emails, then phones, then the address, the first ten of them; then
    the member's own consent (`google_consent`), when it has a record."""
    if mobile_list:
        items = sent.identifiers.with_columns(key=pl.lit("mobileId"), order=pl.lit(0))
    else:
        items = _keyed(sent.identifiers, google.CONTACT_KEYS).with_columns(
            order=pl.when(pl.col("field") == Field.EMAIL.value).then(0).otherwise(1)
        )
        items = pl.concat([items.select("owner", "key", "value", "order"), _addresses(sent)])
    items = items.sort("order", maintain_order=True)  # stable: stored order within each
    kept = items.filter(_ranked(items, "owner") < google.MAX_IDENTIFIERS)
    kept = kept.with_columns(slot=pl.lit(0, dtype=pl.Int64)).select(*PAIRS)
    if consent is None or consent.is_empty():
        return kept
    owners = kept.select("owner").unique()
    return pl.concat([kept, consent.join(owners, on="owner", how="semi").select(*PAIRS)])


def _addresses(sent: Sent) -> pl.DataFrame:
    """`address` (`first|last|country|zip`, hashed or raw as sent) of the members with all four."""
    parts = sent.attributes.pivot(on="field", index="owner", values="value")
    names = [f.value for f in google.ADDRESS_FIELDS]
    for name in names:
        if name not in parts.columns:
            parts = parts.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    return parts.drop_nulls(names).select(
        "owner",
        key=pl.lit("address"),
        value=pl.concat_str(names, separator="|"),
        order=pl.lit(2),
    )


# --- text -------------------------------------------------------------------------------------


def record_texts(
    pairs: pl.DataFrame, *, one_value_a_key: bool = True, one_pair: bool = False
) -> pl.DataFrame:
    """Each record's canonical text, `json.dumps(sorted(pairs), separators=(",", ":"),
    ensure_ascii=False)` as `plan.record_text` writes it. Where a record has at most one value
    a key (all but Google's), the pairs are pivoted to a column a key and joined in key order
    (3× faster than sorting the pairs, measured on Meta's 14-key records); else sorted. Where
    each record is one pair (`one_pair`: Snapchat's), its text is that pair's."""
    if pairs.is_empty():
        return pl.DataFrame(schema=RECORDS)
    pieces = _pieces(pairs)
    if one_pair:
        joined = pieces.select("owner", "piece")
    elif one_value_a_key:
        wide = pieces.pivot(on="key", index=["owner", "slot"], values="piece")
        keys = sorted(c for c in wide.columns if c not in ("owner", "slot"))
        joined = wide.select("owner", piece=pl.concat_str(keys, separator=",", ignore_nulls=True))
    else:
        ordered = pieces.sort("owner", "slot", "key", "value")
        joined = ordered.group_by("owner", "slot", maintain_order=True).agg(
            pl.col("piece").str.join(",")
        )
    return joined.select("owner", record=pl.concat_str(pl.lit("["), "piece", pl.lit("]")))


# A record's data-use pairs (Google consent, Meta LDU) say how the platform may use the member,
# not who it is: a record differing only in them is the same member (`identity_texts`).
_DATA_USE_PAIR = (
    r'\["(?:DATA_PROCESSING_OPTIONS(?:_COUNTRY|_STATE)?|adUserData|adPersonalization)",'
    r'"[^"]*"\],?'
)


def identity_texts(texts: pl.Series) -> pl.Series:
    """Each record's text without its data-use pairs: who the record names. When a member's
    consent or LDU changes, its new record is added and its old one would then be removed, which
    the platform applies to the person (it matches on identifiers): a removal whose identity is
    re-added in the same run must not be sent."""
    return texts.str.replace_all(_DATA_USE_PAIR, "").str.replace(r",\]$", "]")


def text_pairs(texts: pl.Series) -> pl.DataFrame | None:
    """`record_texts` undone in columns: `i` (the text's position), `key`, `value`, one row a
    pair, in each text's order; None when a text holds an escaped character (a backslash) or
    is not `[["key","value"],…]`: decode those as JSON (`plan.decode_record`)."""
    shaped = texts.str.starts_with('[["') & texts.str.ends_with('"]]')
    if texts.is_empty() or texts.str.contains("\\", literal=True).any() or not shaped.all():
        return None
    # Without escapes no key or value holds a quote: split on quotes, `[[`, key, `,`, value,
    # `],[`, key, … puts the keys at 1, 5, 9… and the values at 3, 7, 11… (twice as fast as
    # splitting on the separators, then on each pair's).
    pieces = pl.col("t").str.split('"')
    return (
        pl.DataFrame({"t": texts})
        .lazy()
        .with_row_index("i")
        .select(
            "i",
            pieces.list.gather_every(4, 1).alias("key"),
            pieces.list.gather_every(4, 3).alias("value"),
        )
        .explode("key", "value")
        .collect()
    )


def single_pairs(texts: pl.Series) -> pl.DataFrame | None:
    """`text_pairs` of texts holding one pair each (Snapchat's records), by one split at the
    `","` between key and value: 0.10 s against 0.31 s for 250,000 texts. None when a text is
    not one `[["key","value"]]` without escapes: then `text_pairs`."""
    if texts.is_empty() or texts.str.contains("\\", literal=True).any():
        return None
    text = pl.col("t")
    frame = pl.DataFrame({"t": texts})
    one = text.str.starts_with('[["') & text.str.ends_with('"]]')
    one &= text.str.count_matches('"', literal=True) == 4
    if not frame.select(one.all()).item():
        return None
    inner = text.str.strip_prefix('[["').str.strip_suffix('"]]').str.split_exact('","', 1)
    pair = inner.struct.rename_fields(["key", "value"]).alias("pair")
    return frame.with_row_index("i").select("i", pair).unnest("pair")


def rows_by_key(
    pairs: pl.DataFrame, keys: Sequence[str], fill: str | None
) -> list[tuple[Any, ...]]:
    """Each text's values of `text_pairs` as a row in `keys` order, `fill` where it has none
    (the last value where it has several, as `dict(pairs)` keeps)."""
    wide = pairs.pivot(on="key", index="i", values="value", aggregate_function="last").sort("i")
    present = [
        pl.col(key) if key in wide.columns else pl.lit(None, pl.String).alias(key) for key in keys
    ]
    cells = present if fill is None else [cell.fill_null(fill) for cell in present]
    return wide.select(cells).rows()


def _pieces(pairs: pl.DataFrame) -> pl.DataFrame:
    """`pairs` with `piece`: the pair as JSON text (`["key","value"]`)."""
    plain = pl.format('["{}","{}"]', "key", "value")
    escaped = pl.col("value").str.contains(_NEEDS_ESCAPE)
    pieces = pairs.with_columns(piece=pl.when(escaped).then(None).otherwise(plain))
    odd = pieces["piece"].is_null().arg_true()
    if len(odd):  # rare: quotes, backslashes or control characters in a raw value
        rows = pieces.select("key", "value").gather(odd).rows()
        texts = [json.dumps(list(r), separators=(",", ":"), ensure_ascii=False) for r in rows]
        pieces = pieces.with_columns(pieces["piece"].scatter(odd, texts))
    return pieces
