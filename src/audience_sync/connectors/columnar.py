"""Wire records for the sync engine, built column by column from the member frames.

A connector's `prepare` turns `AudienceUser`s into records one user at a time: right for the
connector API, too slow for a sync of a million members (~10 µs a member of Python, most of a
create's time). Here the same records come out of Polars: each field is normalized and hashed
in bulk, and the values are shaped into records per platform as `(owner, slot, key, value)`
pairs — the rows sharing an owner and a slot are one record — then written as the canonical
record text (`sync.plan.record_text`). `tests/unit/connectors/test_columnar.py` holds the two
paths equal, record for record, on random members of every platform: a change to a platform's
shape or to what it sends must be made in both, its `prepare` and its `RecordShape`.

This module is the shared part; each platform's shape is a `RecordShape` in its own package
(`connectors/<platform>/records.py`), its connector's `RECORD_SHAPE`:
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

from audience_sync.connectors.records import IDENTIFIER_FIELDS, USER_ATTRIBUTES
from audience_sync.domain.members import MemberNeeds
from audience_sync.identifiers import (
    Field,
    PlatformRules,
    Reason,
    hash_series_with_reasons,
    normalize_country,
    rules_for,
)

PAIRS = {"owner": pl.Int64, "slot": pl.Int64, "key": pl.String, "value": pl.String}
RECORDS = {"owner": pl.Int64, "record": pl.String}
# A dropped value: its owner, field, reason and raw value (kept in memory only, for the job's
# diagnostics, which store it masked: `sync.diagnostics`).
DROPS = {"owner": pl.Int64, "field": pl.String, "reason": pl.String, "value": pl.String}
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


@dataclass
class Members:
    """A batch of members as a shape takes them in: the profiles and identifiers sent, the
    members left out (`drops`: `DROPS`, one a member) and the pairs a kept member's record
    carries besides its values (`own_pairs`: `PAIRS`, slot 0; Google's own consent)."""

    profiles: pl.DataFrame
    identifiers: pl.DataFrame
    drops: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DROPS))
    own_pairs: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PAIRS))


class RecordShape:
    """How one platform's records are made of the values sent, in columns: the platform's
    `prepare` and `record_pairs`, for a whole batch at once. Subclassed in each platform's
    package (`records.py`), its connector's `RECORD_SHAPE`."""

    platform: str  # whose normalization applies (`identifiers.rules_for`)
    one_value_a_key: bool = True  # a record holds at most one value a key (texts by pivot)
    one_pair: bool = False  # a record is one pair (its text is that pair's)

    def fields(self, mobile_list: bool) -> list[Field]:
        """The fields the records are made of (an audience's config may narrow them)."""
        raise NotImplementedError

    def profile_columns(self) -> tuple[str, ...]:
        """Profile columns read besides the fields' (a date of birth, data-use choices)."""
        return ()

    def admit(self, members: Members, options: Mapping[str, Any]) -> Members:
        """The members this platform may take (all, unless a shape says otherwise)."""
        return members

    def pairs(
        self,
        sent: Sent,
        members: Members,
        allowed: frozenset[str],
        options: Mapping[str, Any],
        mobile_list: bool,
    ) -> pl.DataFrame:
        """The records as `PAIRS`; drops of the shape's own go into `sent.drops`."""
        raise NotImplementedError


def record_frame(
    shape: RecordShape,
    profiles: pl.DataFrame,
    identifiers: pl.DataFrame,
    allowed: frozenset[str],
    *,
    region: str,
    mobile_list: bool = False,
    options: Mapping[str, Any] | None = None,
) -> RecordFrame:
    """The records a connector would send for these members, by its `shape` (see the module);
    `options` the audience's (consent, Limited Data Use: `domain.data_use`)."""
    options = options or {}
    members = shape.admit(Members(profiles, identifiers), options)
    fields = shape.fields(mobile_list)
    rules = rules_for(shape.platform)
    sent = sent_values(members.profiles, members.identifiers, rules, fields, allowed, region)
    if not members.drops.is_empty():
        sent.drops = pl.concat([sent.drops, members.drops])
    pairs = shape.pairs(sent, members, allowed, options, mobile_list)
    if not members.own_pairs.is_empty():
        owners = pairs.select("owner").unique()
        own = members.own_pairs.join(owners, on="owner", how="semi").select(*PAIRS)
        pairs = pl.concat([pairs, own])
    texts = record_texts(pairs, one_value_a_key=shape.one_value_a_key, one_pair=shape.one_pair)
    return RecordFrame(texts, sent.drops)


def member_fields(shape: RecordShape, mobile_list: bool = False) -> MemberNeeds:
    """What `record_frame` reads of the members: the profile fields among the platform's, the
    country when phones are sent (a phone stored without E.164 is dialled in its profile's
    country), the shape's own columns (Meta's birth date and Limited Data Use, Google's
    consent); its identifier types."""
    fields = shape.fields(mobile_list)
    columns = [f.value for f in fields if f in USER_ATTRIBUTES]
    if Field.PHONE in fields:
        columns.append("country")
    columns += shape.profile_columns()
    types = tuple(f.value for f in fields if f in IDENTIFIER_FIELDS)
    return MemberNeeds(tuple(dict.fromkeys(columns)), types)


# --- what is sent -----------------------------------------------------------------------------


def sent_values(
    profiles: pl.DataFrame,
    identifiers: pl.DataFrame,
    platform: PlatformRules,
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
    platform: PlatformRules,
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
    rows: pl.DataFrame, name: Field, platform: PlatformRules, dropped: list[pl.DataFrame]
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
    platform: PlatformRules,
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


# --- shapes -----------------------------------------------------------------------------------


def keyed(frame: pl.DataFrame, keys: dict[Field, str]) -> pl.DataFrame:
    """`field` renamed to the platform's `key`."""
    mapping = {f.value: key for f, key in keys.items()}
    return frame.with_columns(
        key=pl.col("field").replace_strict(mapping, default=None, return_dtype=pl.String)
    )


def ranked(frame: pl.DataFrame, *by: str) -> pl.Series:
    """The position of each row among the rows sharing `by` (stored order). Done by sorting:
    `pl.int_range(pl.len()).over(*by)` took 123 ms on 120,000 TikTok rows, this 11 ms."""
    order = frame.select(pl.arg_sort_by(*by, maintain_order=True)).to_series()
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    changed = [pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by]
    start = pl.when((row == 0) | pl.any_horizontal(changed)).then(row).forward_fill()
    ranks = frame.select(*by).gather(order).select(row - start).to_series()
    return ranks.gather(order.arg_sort()).alias("slot")


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
    return frame_by_key(pairs, keys, fill).rows()


def frame_by_key(pairs: pl.DataFrame, keys: Sequence[str], fill: str | None) -> pl.DataFrame:
    """`rows_by_key` as a frame: a (string) column a key, a row a text."""
    wide = pairs.pivot(on="key", index="i", values="value", aggregate_function="last").sort("i")
    present = [
        pl.col(key) if key in wide.columns else pl.lit(None, pl.String).alias(key) for key in keys
    ]
    cells = present if fill is None else [cell.fill_null(fill) for cell in present]
    return wide.select(cells)


def json_string_rows(frame: pl.DataFrame) -> bytes:
    """The frame's rows as a JSON array of arrays of its (string) cells, as `json_bytes`
    writes a list of such rows, built in Polars. For values split from record texts
    (`text_pairs`), which hold no quote, backslash or control character (texts with escapes
    are decoded one by one instead): nothing is escaped here."""
    if not frame.width:
        return b"[" + b",".join([b"[]"] * frame.height) + b"]"
    row = pl.concat_str(pl.lit('["'), pl.concat_str(pl.all(), separator='","'), pl.lit('"]'))
    text: str = frame.select(row.str.join(",")).item()
    return b"[" + text.encode() + b"]"


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
