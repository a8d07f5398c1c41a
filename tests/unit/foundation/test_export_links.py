"""Signed download links: any tampering, even with characters a digest never has, is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from audience_sync.export.links import LinkCheck, check, sign

KEYS = [b"k" * 32]
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_a_signed_link_is_valid_until_it_expires() -> None:
    export_id = uuid.uuid4()
    expires, signature = sign(KEYS, export_id, NOW + timedelta(hours=1))
    assert check(KEYS, export_id, expires, signature, NOW) is LinkCheck.VALID
    assert check(KEYS, export_id, expires, signature, NOW + timedelta(hours=2)) is (
        LinkCheck.EXPIRED
    )


@pytest.mark.parametrize("signature", ["", "0" * 64, "é" * 64, "\udcff", "ß"])
def test_a_forged_signature_is_tampered_never_an_error(signature: str) -> None:
    assert check(KEYS, uuid.uuid4(), 1, signature, NOW) is LinkCheck.TAMPERED
