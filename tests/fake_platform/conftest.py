"""The fake platform is registered for this folder's tests only, and taken out after each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from audience_sync.connectors import register_platform
from audience_sync.domain.models import AudienceUser, IdentifierType
from audience_sync.testing import register_family, sent_value

from .emulator import FAMILY, PREFIX, UPLOAD_PATH
from .records import KEYS
from .spec import SPEC


def expect(user: AudienceUser, held: dict[str, set[str]], family: str) -> None:
    """What the emulator holds for one user: each email and phone, hashed, under its key."""
    for ident in user.identifiers:
        key = {t.value: k for t, k in KEYS.items()}.get(ident.type.value)
        if key and ident.type in (IdentifierType.EMAIL, IdentifierType.PHONE):
            value = sent_value(user, ident, family)
            if value:
                held.setdefault(key, set()).add(value)


@pytest.fixture(autouse=True)
def fake_platform() -> Iterator[None]:
    unregister = register_platform(SPEC)
    forget = register_family(FAMILY, PREFIX, UPLOAD_PATH, expect)
    yield
    forget()
    unregister()
