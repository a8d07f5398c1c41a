"""Prepare records read from JSON (`rows.read_object`) for writing: the JSON Lines and API path
of `prepare`, one record at a time (the records hash themselves: `ProfileRecord.content_hash`,
which `prepare.prepare_frame` reproduces column-wise)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import polars as pl

from audience_sync.domain.profiles import END_LINE, FIELD_COLUMNS, LINE, ROW
from audience_sync.identifiers.rules import split_date_of_birth
from audience_sync.sources.prepare import (
    IDENTIFIER_SCHEMA,
    INVALID_DATE_OF_BIRTH,
    PROFILE_SCHEMA,
    UNKNOWN_COUNTRY,
    Prepared,
    Warning,
    resolve_country,
)
from audience_sync.sources.rows import REFUSED_REASON, ProfileRecord, Rejection


def prepare_records(records: Iterable[ProfileRecord], default_region: str) -> Prepared:
    """Records read from JSON (`rows.read_object`) → `Prepared`, hashed by the records
    themselves. Each record's `line` is kept; `_row` numbers them in order."""
    profiles: list[dict[str, Any]] = []
    identifiers: list[tuple[int, str, str, str | None]] = []
    warnings: Counter[Warning] = Counter()
    rejections: list[Rejection] = []
    for record in records:
        region = _record_region(record, default_region, warnings)
        try:
            traits = json.dumps(record.traits, sort_keys=True, ensure_ascii=False, default=str)
            digest = record.content_hash(region or "")
        except (ValueError, RecursionError):  # a value no encoder takes (past the reader's net)
            rejections.append(Rejection(record.line, REFUSED_REASON))
            continue
        row = len(profiles)
        profiles.append(
            {
                ROW: row,
                LINE: record.line,
                END_LINE: record.line,
                "profile_id": record.profile_id,
                **{name: record.fields.get(name) for name in FIELD_COLUMNS},
                "traits": traits,
                "content_hash": digest,
                "region": region,
            }
        )
        identifiers.extend(
            (row, i.type.value, i.value, i.kind.value if i.kind else None)
            for i in record.identifiers
        )
        for column, reason in record.warnings:
            warnings[Warning(column, reason)] += 1
        dob = record.fields.get("date_of_birth")
        if dob is not None and split_date_of_birth(dob) is None:
            warnings[Warning("date_of_birth", INVALID_DATE_OF_BIRTH)] += 1
    return Prepared(
        profiles=pl.DataFrame(profiles, schema=PROFILE_SCHEMA, orient="row")
        if profiles
        else pl.DataFrame(schema=PROFILE_SCHEMA),
        identifiers=pl.DataFrame(identifiers, schema=IDENTIFIER_SCHEMA, orient="row"),
        rejections=rejections,
        warnings=warnings,
    )


def _record_region(
    record: ProfileRecord, default_region: str, warnings: Counter[Warning]
) -> str | None:
    country = record.fields.get("country")
    if country is None:
        return default_region
    code = resolve_country(country)
    if code is None:
        warnings[Warning("country", UNKNOWN_COUNTRY, country)] += 1
    return code
