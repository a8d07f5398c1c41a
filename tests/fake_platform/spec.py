"""The fake platform's registry entry, and its normalization: emails and phones, hashed."""

from __future__ import annotations

from enum import StrEnum

from audience_sync.connectors import PlatformSpec
from audience_sync.identifiers import Field, PlatformRules

from .connector import FakeAudienceConnector
from .records import NAME


class FakePlatform(StrEnum):
    """The fake platform's key: what the database and the API hold for it."""

    FAKE = NAME


RULES = PlatformRules(name=NAME, supported=frozenset({Field.EMAIL, Field.PHONE}))

SPEC = PlatformSpec(
    key=FakePlatform.FAKE,
    display_name="Fake",
    connector=FakeAudienceConnector,
    rules=RULES,
    size_note="the fake platform counts the values it holds",
)
