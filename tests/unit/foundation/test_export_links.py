"""Signed download links: any tampering, even with characters a digest never has, is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from audience_sync.export.links import LinkCheck, _signature, check, sign

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


@pytest.mark.parametrize("expires", [10**13, 10**30, -(10**13), 2**63])
def test_an_expiry_no_link_is_issued_with_is_refused_not_an_overflow(expires: int) -> None:
    export_id = uuid.uuid4()
    signature = _signature(KEYS[0], export_id, expires)  # as if the key had signed it
    verdict = check(KEYS, export_id, expires, signature, NOW, longest=timedelta(hours=1))
    assert verdict is (LinkCheck.EXPIRED if expires < 0 else LinkCheck.TAMPERED)
