"""`/api/v1/alerts`: channels, rules, a test alert and events, round trip, per tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.api import create_app
from audience_sync.domain.models import SyncStatus
from audience_sync.store.api_keys import ApiKeyRepository
from audience_sync.store.db import transaction
from audience_sync.store.repositories import TenantRepository

from .conftest import SECRET, Env, Receiver
from .test_delivery import valid_signature

WEBHOOK = "/api/v1/alerts/channels"


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(env.service.settings, env.service.engine, env.service)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as found:
        yield found


def key_of(env: Env, tenant_id: int | None = None) -> dict[str, str]:
    with transaction(env.service.factory) as session:
        if tenant_id is None:
            tenant_id = TenantRepository(session).create("bob").id
        key = ApiKeyRepository(session).issue(tenant_id)
    return {"Authorization": f"Bearer {key}"}


async def test_a_webhook_channel_is_created_shown_without_its_secret_and_tested(
    env: Env, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    alice = key_of(env, env.tenant_id)
    body = {"kind": "webhook", "url": receiver.url, "secret": SECRET}
    made = await client.post(WEBHOOK, json=body, headers=alice)
    assert made.status_code == 201, made.text
    channel = made.json()
    assert SECRET not in made.text
    assert "/hooks/alerts" not in made.text  # the path may be a secret (Slack's is)
    assert channel["secret"] == "****" + SECRET[-4:]
    listed = (await client.get(WEBHOOK, headers=alice)).json()["channels"]
    assert [c["id"] for c in listed] == [channel["id"]]
    tested = await client.post(f"{WEBHOOK}/{channel['id']}/test", headers=alice)
    assert tested.status_code == 200, tested.text
    assert tested.json()["status"] == "sent"
    (arrived,) = receiver.received
    valid_signature(arrived.headers["X-Audience-Sync-Signature"], arrived.body)


async def test_channels_refuse_bad_input(env: Env, client: httpx.AsyncClient) -> None:
    alice = key_of(env, env.tenant_id)
    bad: list[dict[str, Any]] = [
        {"kind": "webhook", "url": "ftp://example.net/x", "secret": SECRET},
        {"kind": "webhook", "url": "https://example.net/x"},  # no secret
        {"kind": "webhook", "url": "https://example.net/x", "secret": "tiny-sec"},
        {"kind": "email", "to": []},
        {"kind": "email", "to": ["not-an-address"]},
        {"kind": "pager", "to": ["a@b.c"]},
    ]
    for body in bad:
        answer = await client.post(WEBHOOK, json=body, headers=alice)
        assert answer.status_code == 422, body
        assert "tiny-sec" not in answer.text
    slack = {"kind": "webhook", "url": "https://hooks.slack.com/services/T/B/XYZ"}
    made = await client.post(WEBHOOK, json=slack, headers=alice)
    assert made.status_code == 201
    assert made.json()["slack"] is True
    assert "XYZ" not in made.text
    email = await client.post(WEBHOOK, json={"kind": "email", "to": ["ops@x.test"]}, headers=alice)
    assert email.json()["to"] == ["ops@x.test"]


async def test_rules_are_read_and_changed(env: Env, client: httpx.AsyncClient) -> None:
    alice = key_of(env, env.tenant_id)
    rules = (await client.get("/api/v1/alerts/rules", headers=alice)).json()["rules"]
    assert len(rules) == 7
    assert all(rule["enabled"] for rule in rules)
    change = {"rules": {"members_dropped": {"threshold": 40}, "stale_audience": {"enabled": False}}}
    put = await client.put("/api/v1/alerts/rules", json=change, headers=alice)
    assert put.status_code == 200, put.text
    by_name = {rule["rule"]: rule for rule in put.json()["rules"]}
    assert by_name["members_dropped"]["threshold"] == 40
    assert by_name["members_dropped"]["default_threshold"] == 20
    assert by_name["stale_audience"]["enabled"] is False
    wrong = {"rules": {"sync_failed": {"threshold": 5}}}
    unknown = {"rules": {"no_such_rule": {"enabled": False}}}
    for body in (wrong, unknown):
        answer = await client.put("/api/v1/alerts/rules", json=body, headers=alice)
        assert answer.status_code == 422


async def test_events_show_incidents_and_deliveries_to_their_tenant_only(
    env: Env, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    alice = key_of(env, env.tenant_id)
    env.webhook(receiver.url)
    env.ended(SyncStatus.FAILED, error="Meta refused")
    found = await client.get("/api/v1/alerts/events", headers=alice)
    (event,) = found.json()["events"]
    assert (event["rule"], event["state"]) == ("sync_failed", "open")
    assert event["deliveries"][0]["status"] == "sent"
    scoped = await client.get(
        "/api/v1/alerts/events", params={"audience_id": str(env.audience_id)}, headers=alice
    )
    assert len(scoped.json()["events"]) == 1
    resolved = await client.get("/api/v1/alerts/events?state=resolved", headers=alice)
    assert resolved.json()["events"] == []
    bob = key_of(env)
    assert (await client.get("/api/v1/alerts/events", headers=bob)).json()["events"] == []
    channel_id = event["deliveries"][0]["channel_id"]
    assert (await client.post(f"{WEBHOOK}/{channel_id}/test", headers=bob)).status_code == 404
    assert (await client.delete(f"{WEBHOOK}/{channel_id}", headers=bob)).status_code == 404
    assert (await client.delete(f"{WEBHOOK}/{channel_id}", headers=alice)).status_code == 204
    assert (await client.get(WEBHOOK, headers=alice)).json()["channels"] == []


async def test_a_channel_id_past_the_databases_integers_is_a_422(
    env: Env, client: httpx.AsyncClient
) -> None:
    alice = key_of(env, env.tenant_id)
    answer = await client.post(f"{WEBHOOK}/960527054722853634048/test", headers=alice)
    assert answer.status_code == 422
