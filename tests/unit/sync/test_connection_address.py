"""A connection's stored base_url reaches the connector only when the operator allows it: one
stored by a tenant (or before the rule) must not send the server's requests elsewhere."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from audience_sync.config import Settings
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncPlatform
from audience_sync.store import db
from audience_sync.sync.runner import Target
from audience_sync.sync.service import build_service

ELSEWHERE = "http://169.254.169.254/latest"


@pytest.mark.parametrize(("allowed", "expected"), [(False, None), (True, ELSEWHERE)])
def test_a_stored_base_url_is_used_only_when_allowed(
    tmp_path: Path, allowed: bool, expected: str | None
) -> None:
    key = Fernet.generate_key()
    settings = Settings(
        environment="test",
        var_dir=tmp_path,
        secret_key=key.decode(),
        allow_connection_base_url=allowed,
    )
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    service = build_service(settings, engine)
    target = Target(
        tenant_id=1,
        audience_id=uuid.uuid4(),
        segment_id=uuid.uuid4(),
        platform=SyncPlatform.META,
        platform_audience_id=None,
        name="A",
        ad_account_id="1",
        description=None,
        config={},
        sealed_credentials=CredentialCipher([key]).encrypt({"access_token": "t"}),
        base_url=ELSEWHERE,
        region="US",
    )
    connector = service.connect(target)
    assert connector.base_url == (expected or settings.meta_base_url)
    engine.dispose()
