"""What a sync reads of a segment's members: a platform's needs, as plain values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemberNeeds:
    """The profile fields and identifier types a platform's records are made of. The
    connectors say it (`connectors.columnar.member_fields`); the member reader turns it into
    its query (`sources.members.MemberFields`)."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
