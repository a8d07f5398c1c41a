"""A bounded schemathesis run against the API's own OpenAPI document: no input gives a 500."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from audience_sync.api import create_app
from audience_sync.config import Settings
from audience_sync.store import db
from audience_sync.store.repositories import ApiKeyRepository, TenantRepository

_DIR = Path(tempfile.mkdtemp(prefix="audience-sync-schemathesis-"))
atexit.register(shutil.rmtree, _DIR, True)
_SETTINGS = Settings(
    environment="test", var_dir=_DIR / "var", database_url=f"sqlite:///{_DIR}/api.db"
)
_ENGINE = db.make_engine(_SETTINGS.effective_database_url)
db.upgrade(_ENGINE)
atexit.register(_ENGINE.dispose)
with db.transaction(db.session_factory(_ENGINE)) as _session:
    _TENANT = TenantRepository(_session).create("fuzz")
    KEY = ApiKeyRepository(_session).issue(_TENANT.id)

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SETTINGS, _ENGINE))


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_makes_the_api_fail(case: schemathesis.Case) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {KEY}"}
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"
