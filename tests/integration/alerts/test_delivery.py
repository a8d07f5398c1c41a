"""Deliveries: a receiver down for an hour gets each alert once when it is back, signed; a
crashed sender's claim runs out and the alert goes once more with the same delivery id; two
senders at once send each delivery once; nothing identifies a person or opens an account."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import uuid

from audience_sync.domain.models import SyncStatus
from audience_sync.services import alerts
from audience_sync.services.alerts import delivery
from audience_sync.services.alerts.channels import DELIVERY_HEADER, SIGNATURE_HEADER
from audience_sync.store import alerts as store
from audience_sync.store.db import transaction

from .conftest import SECRET, Env, Receiver

FAILED = SyncStatus.FAILED


def valid_signature(header: str, body: bytes, secret: str = SECRET) -> int:
    """The receiver's check (docs/alerts.md): the HMAC of "t.body"; the timestamp returned."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(expected.hexdigest(), parts["v1"])
    return int(parts["t"])


def test_a_receiver_down_for_an_hour_gets_the_alert_once_when_it_is_back(
    env: Env, receiver: Receiver
) -> None:
    env.webhook(receiver.url)
    receiver.up = False
    env.ended(FAILED, error="Meta refused")
    for _ in range(12):  # an hour of ticks, five minutes apart
        env.clock.advance(minutes=5)
        alerts.upkeep(env.service)
    (incident,) = env.events()
    (pending,) = incident["deliveries"]
    assert pending["status"] == "pending"
    assert pending["attempts"] >= 5
    assert pending["last_error"] == "the receiver answered HTTP 503"
    receiver.up = True
    up_at = env.clock.now.timestamp()
    for _ in range(24):  # at most the backoff's cap later, it arrives; never twice
        env.clock.advance(minutes=5)
        alerts.upkeep(env.service)
    (arrived,) = receiver.received
    assert arrived.headers[DELIVERY_HEADER] == pending["id"]
    sent_at = valid_signature(arrived.headers[SIGNATURE_HEADER], arrived.body)
    assert up_at < sent_at <= up_at + 3600 + 300  # within the cap (an hour) and a tick
    (incident,) = env.events()
    assert incident["deliveries"][0]["status"] == "sent"


def test_a_receiver_that_is_not_listening_is_retried_without_leaking_its_url(
    env: Env, receiver: Receiver
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/secret-path-token"
    env.webhook(closed)
    env.ended(FAILED, error="Meta refused")
    ((pending,),) = [e["deliveries"] for e in env.events()]
    assert pending["status"] == "pending"
    assert pending["last_error"] == "could not reach the receiver (ConnectError)"


def test_an_alert_is_given_up_only_after_a_day(env: Env, receiver: Receiver) -> None:
    env.webhook(receiver.url)
    receiver.up = False
    env.ended(FAILED, error="Meta refused")
    for _ in range(23):
        env.clock.advance(hours=1)
        alerts.upkeep(env.service)
    assert env.events()[0]["deliveries"][0]["status"] == "pending"
    for _ in range(3):
        env.clock.advance(hours=1)
        alerts.upkeep(env.service)
    assert env.events()[0]["deliveries"][0]["status"] == "failed"
    assert receiver.received == []


def test_a_sender_that_crashed_mid_attempt_is_replaced_once_its_claim_runs_out(
    env: Env, receiver: Receiver
) -> None:
    env.webhook(receiver.url)
    receiver.up = False
    env.ended(FAILED, error="Meta refused")  # first attempt failed: due again in a minute
    receiver.up = True
    env.clock.advance(minutes=1)
    with transaction(env.service.factory) as session:
        (due,) = store.due_deliveries(session, env.clock.now, 10)
        assert store.claim(session, due, "crashed-sender", env.clock.now, delivery.CLAIM_SECONDS)
    alerts.upkeep(env.service)  # the claim is live: nobody else sends it
    assert receiver.received == []
    env.clock.advance(seconds=delivery.CLAIM_SECONDS + 1)
    alerts.upkeep(env.service)
    alerts.upkeep(env.service)
    (arrived,) = receiver.received
    assert arrived.headers[DELIVERY_HEADER] == str(due)


def test_two_senders_at_once_send_each_delivery_once(env: Env, receiver: Receiver) -> None:
    channel = env.webhook(receiver.url)
    receiver.delay = 0.02  # a slow receiver widens the race
    with transaction(env.service.factory) as session:
        repo = store.AlertRepository(session, env.tenant_id)
        channels = [repo.channel(channel)]
        queued = [d.id for _ in range(30) for d in repo.queue(None, "test", channels, env.clock())]
    barrier = threading.Barrier(2)

    def sender() -> None:
        barrier.wait()
        delivery.deliver_due(env.service)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [r.headers[DELIVERY_HEADER] for r in receiver.received]
    assert sorted(ids) == sorted(str(d) for d in queued)  # each once, none lost


def test_bodies_name_no_identifier_token_or_secret(env: Env, receiver: Receiver) -> None:
    env.webhook(receiver.url)
    env.ended(SyncStatus.COMPLETED, members=100, failed=60, platform_size=40, match_rate=0.4)
    env.ended(SyncStatus.FAILED, error="Meta refused", error_code="guard_rail")
    assert len(receiver.received) >= 2
    for arrived in receiver.received:
        text = arrived.body.decode() + str(arrived.headers)
        for secret in (SECRET, "sandbox-token", "6000000000001", "1234567890"):
            assert secret not in text
        assert "VIP buyers" in text


def test_a_test_alert_answers_with_its_outcome(env: Env, receiver: Receiver) -> None:
    channel = env.webhook(receiver.url)
    sent = alerts.send_test(env.service, env.tenant_id, channel)
    assert (sent["status"], sent["attempts"], sent["last_error"]) == ("sent", 1, None)
    assert receiver.received[0].json["type"] == "alert.test"
    receiver.up = False
    failed = alerts.send_test(env.service, env.tenant_id, channel)
    assert (failed["status"], failed["last_error"]) == ("failed", "the receiver answered HTTP 503")
    assert uuid.UUID(failed["id"])


def test_a_channel_that_no_longer_decrypts_backs_off_and_stops_nothing_else(
    env: Env, receiver: Receiver
) -> None:
    broken = env.webhook(receiver.url)
    env.webhook(receiver.url)
    with transaction(env.service.factory) as session:
        store.AlertRepository(session, env.tenant_id).channel(broken).target_encrypted = "x"
    env.ended(FAILED, error="Meta refused")
    by_channel = {d["channel_id"]: d for d in env.events()[0]["deliveries"]}
    failing = by_channel.pop(broken)
    assert failing["status"] == "pending"
    assert failing["last_error"] == "unexpected ConfigurationError"
    assert [d["status"] for d in by_channel.values()] == ["sent"]
    assert len(receiver.received) == 1
    alerts.upkeep(env.service)  # not due yet: backing off, not retried at every tick
    again = {d["channel_id"]: d for d in env.events()[0]["deliveries"]}
    assert again[broken]["attempts"] == 1
