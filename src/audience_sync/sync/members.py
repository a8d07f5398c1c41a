"""From the CDP's member frames to connector records, keyed for the snapshot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl

from audience_sync.connectors import BaseAudienceConnector
from audience_sync.domain.models import (
    AudienceUser,
    IdentifierType,
    MobileIdKind,
    UserIdentifier,
)
from audience_sync.sync.plan import encode_record

CURRENT_SCHEMA = {"record_hash": pl.String, "record": pl.String, "owner": pl.Int64}


@dataclass
class Current:
    """Every record the segment's members produce now, and what could not be used."""

    records: pl.DataFrame  # record_hash, record, owner (profile_pk)
    members: int = 0
    unusable_members: int = 0  # members with no identifier the platform can take
    dropped: Counter[str] = field(default_factory=Counter)  # values dropped, by reason
    member_pks: list[int] = field(default_factory=list)  # every member, in the users' order


def users_of(profiles: pl.DataFrame, identifiers: pl.DataFrame) -> list[AudienceUser]:
    """One `AudienceUser` per profile row, with its identifiers (phones with their E.164)."""
    by_profile: dict[int, list[UserIdentifier]] = {}
    for pk, kind_of_id, value, e164, kind in identifiers.iter_rows():
        by_profile.setdefault(pk, []).append(
            UserIdentifier(
                IdentifierType(kind_of_id), value, MobileIdKind(kind) if kind else None, e164
            )
        )
    return [
        AudienceUser(
            profile_id=row["profile_id"],
            identifiers=tuple(by_profile.get(row["profile_pk"], ())),
            first_name=row["first_name"],
            last_name=row["last_name"],
            country=row["country"],
            city=row["city"],
            state=row["state"],
            zip_code=row["zip"],
            date_of_birth=row["date_of_birth"],
            gender=row["gender"],
        )
        for row in profiles.iter_rows(named=True)
    ]


async def current_records(
    connector: BaseAudienceConnector,
    audience_id: str,
    batches: Iterator[tuple[pl.DataFrame, pl.DataFrame]],
) -> tuple[Current, list[AudienceUser]]:
    """Prepare every member as the connector would send it; keep each record's pairs."""
    frames: list[pl.DataFrame] = []
    users_all: list[AudienceUser] = []
    current = Current(pl.DataFrame(schema=CURRENT_SCHEMA))
    for profiles, identifiers in batches:
        users = users_of(profiles, identifiers)
        owners = profiles["profile_pk"].to_list()
        prepared = await connector.records_for(audience_id, users)
        rows = []
        for record, owner in zip(prepared.records, prepared.owners, strict=True):
            record_hash, text = encode_record(connector.record_pairs(prepared, record))
            rows.append((record_hash, text, owners[owner]))
        frames.append(pl.DataFrame(rows, schema=CURRENT_SCHEMA, orient="row"))
        current.members += len(users)
        current.member_pks.extend(owners)
        current.unusable_members += len(users) - len(set(prepared.owners))
        current.dropped.update(prepared.dropped)
        users_all.extend(users)
    if frames:
        current.records = pl.concat(frames)
    current.dropped.pop("no_usable_identifier", None)
    return current, users_all
