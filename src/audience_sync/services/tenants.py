"""Tenants and their API keys: who a request or a command acts for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from audience_sync.exceptions import NotFoundError
from audience_sync.store.api_keys import ApiKeyRepository
from audience_sync.store.db import reading, transaction
from audience_sync.store.repositories import DEFAULT_TENANT_SLUG, TenantRepository

__all__ = [
    "DEFAULT_TENANT_SLUG",
    "ApiKeyView",
    "TenantView",
    "authenticate",
    "create_tenant",
    "ensure_tenant",
    "issue_key",
    "issue_key_for",
    "keys_of",
    "list_keys",
    "list_tenants",
    "region_of",
    "revoke_key",
    "revoke_key_of",
    "tenant_id",
]


@dataclass(frozen=True, slots=True)
class TenantView:
    id: int
    slug: str
    default_region: str


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    """A key as it can be shown again: its name and prefix, never the key."""

    prefix: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def tenant_id(factory: sessionmaker[Session], slug: str) -> int:
    """The id of the tenant `slug`; the default tenant is created on first use."""
    with transaction(factory) as session:
        return TenantRepository(session).get(slug).id


def region_of(session: Session, tenant: int) -> str:
    return TenantRepository(session).region_of(tenant)


def create_tenant(factory: sessionmaker[Session], slug: str, region: str = "US") -> tuple[int, str]:
    """A new tenant and its first API key (shown once, stored only as a hash)."""
    with transaction(factory) as session:
        tenant = TenantRepository(session).create(slug, slug, region)
        return tenant.id, ApiKeyRepository(session).issue(tenant.id)


def ensure_tenant(factory: sessionmaker[Session], slug: str, name: str) -> int:
    """The tenant `slug`, created when missing (the demo's)."""
    with transaction(factory) as session:
        tenants = TenantRepository(session)
        return (tenants.by_slug(slug) or tenants.create(slug, name)).id


def list_tenants(factory: sessionmaker[Session]) -> list[TenantView]:
    with transaction(factory) as session:
        return [
            TenantView(t.id, t.slug, t.default_region) for t in TenantRepository(session).list()
        ]


def issue_key(factory: sessionmaker[Session], slug: str, name: str = "default") -> str:
    """A new API key for an existing tenant (the default one is created on first use)."""
    with transaction(factory) as session:
        tenant = TenantRepository(session).get(slug)
        return ApiKeyRepository(session).issue(tenant.id, name=name)


def issue_key_for(factory: sessionmaker[Session], tenant: int, name: str) -> str:
    """A new API key for the tenant of id `tenant` (the dashboard's); shown once."""
    with transaction(factory) as session:
        return ApiKeyRepository(session).issue(tenant, name=name)


def list_keys(factory: sessionmaker[Session], slug: str) -> list[ApiKeyView]:
    with transaction(factory) as session:
        tenant = TenantRepository(session).get(slug)
        return _key_views(session, tenant.id)


def keys_of(factory: sessionmaker[Session], tenant: int) -> list[ApiKeyView]:
    """The keys of the tenant of id `tenant`, revoked ones too, oldest first."""
    with transaction(factory) as session:
        return _key_views(session, tenant)


def _key_views(session: Session, tenant: int) -> list[ApiKeyView]:
    return [
        ApiKeyView(k.prefix, k.name, k.created_at, k.last_used_at, k.revoked_at)
        for k in ApiKeyRepository(session).list(tenant)
    ]


def revoke_key(factory: sessionmaker[Session], slug: str, prefix: str, now: datetime) -> str:
    """Revoke the tenant's active key starting with `prefix` (its shown prefix, or the whole
    key); the key's prefix. Requests with it are refused (401) from then on."""
    with transaction(factory) as session:
        tenant = TenantRepository(session).get(slug)
        return ApiKeyRepository(session).revoke(tenant.id, prefix.strip()[:10], now).prefix


def revoke_key_of(factory: sessionmaker[Session], tenant: int, prefix: str, now: datetime) -> str:
    """`revoke_key` for the tenant of id `tenant`: `NotFoundError` for a prefix of no active
    key of this tenant (another tenant's keys are never found)."""
    if not prefix.strip():  # an empty prefix would match every key
        raise NotFoundError("No API key was named.")
    with transaction(factory) as session:
        return ApiKeyRepository(session).revoke(tenant, prefix.strip()[:10], now).prefix


def authenticate(factory: sessionmaker[Session], key: str) -> int | None:
    """The tenant id of a valid, unrevoked key, else None. Read in autocommit (`reading`):
    every API request runs this, and its one SELECT needs no transaction around it."""
    with reading(factory) as session:
        return ApiKeyRepository(session).authenticate(key)
