"""From `AudienceUser`s to what a platform receives: every field normalized and hashed in bulk.

Connectors build their wire records from a `HashedUsers`: per field, per user, the values that
are sent (hex digests, or the raw forms a platform takes unhashed). The work is done column by
column with `identifiers.hash_many_with_reasons` (the fast path), never value by value. The sync
engine builds the same records from member frames in `connectors.columnar`: keep the two equal.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from audience_sync.domain.models import AudienceUser, IdentifierType, MobileIdKind
from audience_sync.identifiers import (
    Field,
    Reason,
    date_of_birth_reason,
    expand_date_of_birth,
    hash_many_with_reasons,
    normalize_country,
)
from audience_sync.identifiers.platforms import PlatformRules

IDENTIFIER_FIELDS = (Field.EMAIL, Field.PHONE, Field.MOBILE_ID, Field.EXTERNAL_ID)
USER_ATTRIBUTES = {
    Field.FIRST_NAME: "first_name",
    Field.LAST_NAME: "last_name",
    Field.CITY: "city",
    Field.STATE: "state",
    Field.ZIP: "zip_code",
    Field.COUNTRY: "country",
    Field.GENDER: "gender",
}
_SILENT = (Reason.EMPTY, Reason.UNSUPPORTED)
NONE: list[str] = []
"""The shared empty value list of a user without the field (never appended to)."""


@dataclass
class HashedUsers:
    """Sent values per field and user (`values[field][i]` lists user i's values, in order).

    The lists are read-only: users without a value share one empty list (`NONE`).
    """

    count: int
    values: dict[Field, list[list[str]]] = field(default_factory=dict)
    mobile_kinds: list[list[MobileIdKind | None]] = field(default_factory=list)
    date_of_birth: list[dict[str, str] | None] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    """Unusable values by reason code (`invalid_email`, `zeroed_maid`, ...)."""

    def of(self, name: Field, user: int) -> list[str]:
        column = self.values.get(name)
        return column[user] if column is not None else []

    def first(self, name: Field, user: int) -> str | None:
        found = self.of(name, user)
        return found[0] if found else None


def region_of(user: AudienceUser, default: str) -> str:
    """Where a national phone number is dialled: the profile's country, else the default."""
    if user.country:
        code = normalize_country(user.country)
        if code:
            return code.upper()
    return default


def hash_users(
    users: Sequence[AudienceUser],
    platform: PlatformRules | str,
    fields: Sequence[Field],
    *,
    default_region: str = "US",
    date_of_birth: bool = False,
) -> HashedUsers:
    """Normalize and hash `fields` of every user for `platform` (see docs/normalization.md)."""
    out = HashedUsers(count=len(users))
    for name in fields:
        column: list[list[str]] = [NONE] * len(users)
        if name in IDENTIFIER_FIELDS:
            _identifier_column(users, platform, name, column, out, default_region)
        else:
            raw = [getattr(u, USER_ATTRIBUTES[name]) for u in users]
            if not any(raw):
                out.values[name] = column
                continue
            result = hash_many_with_reasons(raw, name, platform, region=default_region)
            for i, (sent, reason) in enumerate(zip(result.sent, result.reasons, strict=True)):
                if sent is not None:
                    column[i] = [sent]
                elif reason is not None and reason not in _SILENT:
                    out.dropped[reason.value] += 1
        out.values[name] = column
    if date_of_birth:
        births = [u.date_of_birth for u in users]
        out.date_of_birth = [None] * len(users)
        if any(births):
            out.date_of_birth = [expand_date_of_birth(b, platform) if b else None for b in births]
            _count_births(births, platform, out.dropped)
    return out


def _count_births(
    births: Sequence[str | None], platform: PlatformRules | str, dropped: Counter[str]
) -> None:
    """Count the dates of birth the platform cannot use (`invalid_date_of_birth`); a platform
    without date-of-birth keys (`unsupported_by_platform`) and a missing date count nothing."""
    for birth in births:
        reason = date_of_birth_reason(birth, platform)
        if reason is Reason.INVALID_DATE_OF_BIRTH:
            dropped[reason.value] += 1


def _identifier_column(
    users: Sequence[AudienceUser],
    platform: PlatformRules | str,
    name: Field,
    column: list[list[str]],
    out: HashedUsers,
    default_region: str,
) -> None:
    wanted = IdentifierType(name.value)
    # Phones are hashed in groups by the region they are dialled in (a stored E.164 needs
    # none); the results are then taken in stored order, which `connectors.columnar` follows.
    entries: list[tuple[int, MobileIdKind | None]] = []
    groups: dict[str, tuple[list[str], list[int]]] = defaultdict(lambda: ([], []))
    for i, user in enumerate(users):
        for ident in user.identifiers:
            if ident.type is not wanted:
                continue
            value, region = ident.value, "US"
            if wanted is IdentifierType.PHONE:
                if ident.e164:
                    value = ident.e164
                else:
                    region = region_of(user, default_region)
            values, at = groups[region]
            values.append(value)
            at.append(len(entries))
            entries.append((i, ident.kind))
    outcomes: list[tuple[str | None, Reason | None]] = [(None, None)] * len(entries)
    for region, (values, at) in groups.items():
        result = hash_many_with_reasons(values, name, platform, region=region)
        for k, sent, reason in zip(at, result.sent, result.reasons, strict=True):
            outcomes[k] = (sent, reason)
    if name is Field.MOBILE_ID:
        out.mobile_kinds = [[] for _ in users] if entries else []
    for (owner, kind), (sent, reason) in zip(entries, outcomes, strict=True):
        if sent is None:
            if reason is not None and reason is not Reason.UNSUPPORTED:
                out.dropped[reason.value] += 1
            continue
        if column[owner] is NONE:
            column[owner] = []
        elif sent in column[owner]:
            continue  # the same value twice on one profile is sent once
        column[owner].append(sent)
        if name is Field.MOBILE_ID:
            out.mobile_kinds[owner].append(kind)
