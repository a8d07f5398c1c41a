"""Bulk upsert of imported profiles into the built-in CDP, a chunk at a time, set-wise."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import IdentifierType
from audience_sync.sources.rows import ProfileRecord
from audience_sync.store.db import transaction
from audience_sync.store.repositories import add_segment_members
from audience_sync.store.tables import Profile, ProfileIdentifier
from audience_sync.store.types import utcnow

# Core tables for bulk writes (ORM bulk inserts batch poorly when NULLs vary between rows).
PROFILES = cast(Table, Profile.__table__)
IDENTIFIERS = cast(Table, ProfileIdentifier.__table__)

PhoneParser = Callable[[str, str], "str | None"]
CountryNormalizer = Callable[[str], "str | None"]
log = logging.getLogger(__name__)
# What a row refused by the database is reported as (the database's message is never shown: it
# may quote the row's values).
REFUSED_REASON = "the database refused a value of this row; nothing of it was stored"


@dataclass(slots=True)
class WriteCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: WriteCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


@dataclass(slots=True)
class ChunkResult:
    """What `write_chunk` stored, and the records the database refused (each alone)."""

    counts: WriteCounts
    refused: list[ProfileRecord]


def write_chunk(
    factory: sessionmaker[Session],
    make_writer: Callable[[Session], ProfileWriter],
    records: Sequence[ProfileRecord],
) -> ChunkResult:
    """Write `records` in one transaction; if the database refuses a value, write each record
    in its own transaction, so a bad row costs only itself, never the chunk's good rows.

    The row reader refuses what is known to break a write (`rows.value_problem`); this is the
    net for whatever else a database refuses. Only the exception's type is logged: its message
    may quote the rows' values."""
    try:
        with transaction(factory) as session:
            return ChunkResult(make_writer(session).write(records), [])
    except Exception as exc:
        if not _refused(exc):
            raise
        log.warning("a chunk of %d rows was refused (%s): writing its rows one by one",
                    len(records), type(exc).__name__)  # fmt: skip
    counts, refused = WriteCounts(), []
    for record in records:
        try:
            with transaction(factory) as session:
                counts.add(make_writer(session).write([record]))
        except Exception as exc:
            if not _refused(exc):
                raise
            log.warning("line %d was refused (%s)", record.line, type(exc).__name__)
            refused.append(record)
    return ChunkResult(counts, refused)


def _refused(exc: Exception) -> bool:
    """A refusal of this data (a value, a constraint), not a failing database (connection,
    schema), which must stop the import rather than reject every row."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc, DataError | IntegrityError)
    # StatementError: a value that failed before reaching the driver; ValueError: one the
    # driver could not encode (UnicodeEncodeError), or hashing failed on.
    return isinstance(exc, StatementError | ValueError | RecursionError)


class ProfileWriter:
    """Writes chunks of records for one tenant; the caller commits after each chunk.

    A record is the profile's whole current state: an existing profile whose row changed gets its
    fields replaced and its identifiers rewritten; an identical row changes nothing at all.
    """

    def __init__(
        self,
        session: Session,
        tenant_id: int,
        default_region: str,
        parse_phone: PhoneParser,
        normalize_country: CountryNormalizer,
        segment_id: uuid.UUID | None = None,
    ) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.default_region = default_region
        self.parse_phone = parse_phone
        self.normalize_country = functools.lru_cache(maxsize=4096)(normalize_country)
        self.segment_id = segment_id

    def write(self, records: Sequence[ProfileRecord]) -> WriteCounts:
        """Write records in file order; a profile repeated in the chunk is applied in turn."""
        counts = WriteCounts()
        for unique in _rounds(records):
            counts.add(self._write_unique(unique))
        return counts

    def _write_unique(self, records: list[ProfileRecord]) -> WriteCounts:
        hashes = {r.profile_id: r.content_hash(self.default_region) for r in records}
        existing = self._existing([r.profile_id for r in records])
        new = [r for r in records if r.profile_id not in existing]
        changed = [
            r
            for r in records
            if r.profile_id in existing and existing[r.profile_id][1] != hashes[r.profile_id]
        ]
        pks = {pid: pk for pid, (pk, _) in existing.items()}
        pks.update(self._insert_profiles(new, hashes))
        self._update_profiles(changed, hashes, pks)
        self._write_identifiers(new + changed, pks)
        if self.segment_id is not None:
            members = [pks[r.profile_id] for r in records]
            add_segment_members(self.session, self.tenant_id, self.segment_id, members)
        return WriteCounts(len(new), len(changed), len(records) - len(new) - len(changed))

    def _existing(self, profile_ids: list[str]) -> dict[str, tuple[int, str]]:
        rows = self.session.execute(
            select(Profile.profile_id, Profile.id, Profile.content_hash).where(
                Profile.tenant_id == self.tenant_id, Profile.profile_id.in_(profile_ids)
            )
        )
        return {pid: (pk, digest) for pid, pk, digest in rows}

    def _insert_profiles(
        self, records: list[ProfileRecord], hashes: dict[str, str]
    ) -> dict[str, int]:
        if not records:
            return {}
        now = utcnow()
        rows = [
            {**self._profile_values(r, hashes), "tenant_id": self.tenant_id, "created_at": now}
            for r in records
        ]
        # Core executemany, then one SELECT for the new ids: the ORM's bulk INSERT ... RETURNING
        # splits rows by which columns are NULL and fetches quadratically on SQLite (SA 2.1).
        self.session.execute(insert(PROFILES), rows)
        created = self._existing([r.profile_id for r in records])
        return {pid: pk for pid, (pk, _) in created.items()}

    def _update_profiles(
        self, records: list[ProfileRecord], hashes: dict[str, str], pks: dict[str, int]
    ) -> None:
        if not records:
            return
        rows = [{**self._profile_values(r, hashes), "pk": pks[r.profile_id]} for r in records]
        columns: dict[str, Any] = {name: bindparam(name) for name in rows[0] if name != "pk"}
        self.session.execute(
            update(PROFILES).where(PROFILES.c.id == bindparam("pk")).values(columns), rows
        )
        self.session.execute(
            delete(IDENTIFIERS).where(
                IDENTIFIERS.c.tenant_id == self.tenant_id,
                IDENTIFIERS.c.profile_pk.in_([row["pk"] for row in rows]),
            )
        )

    def _profile_values(self, record: ProfileRecord, hashes: dict[str, str]) -> dict[str, Any]:
        return {
            "profile_id": record.profile_id,
            **record.fields,
            "traits": record.traits,
            "content_hash": hashes[record.profile_id],
            "updated_at": utcnow(),
        }

    def _write_identifiers(self, records: list[ProfileRecord], pks: dict[str, int]) -> None:
        rows: list[dict[str, Any]] = []
        for record in records:
            region = self._region(record)
            for identifier in record.identifiers:
                is_phone = identifier.type is IdentifierType.PHONE
                rows.append(
                    {
                        "tenant_id": self.tenant_id,
                        "profile_pk": pks[record.profile_id],
                        "type": identifier.type,
                        "value": identifier.value,
                        "kind": identifier.kind,
                        "e164": self.parse_phone(identifier.value, region) if is_phone else None,
                    }
                )
        if rows:
            self.session.execute(insert(IDENTIFIERS), rows)

    def _region(self, record: ProfileRecord) -> str:
        """The profile's country, else the tenant's default region (for national phone numbers)."""
        country = record.fields.get("country")
        code = self.normalize_country(country) if country else None
        return code.upper() if code else self.default_region


def _rounds(records: Sequence[ProfileRecord]) -> Iterator[list[ProfileRecord]]:
    """Split records into runs with unique profile ids, keeping file order between repeats."""
    current: list[ProfileRecord] = []
    seen: set[str] = set()
    for record in records:
        if record.profile_id in seen:
            yield current
            current, seen = [], set()
        current.append(record)
        seen.add(record.profile_id)
    if current:
        yield current
