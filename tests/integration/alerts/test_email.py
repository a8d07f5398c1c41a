"""E-mail alerts over SMTP, to a local server the test starts (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncStatus
from audience_sync.exceptions import FieldError
from audience_sync.services import alerts

from .conftest import Clock, Env, make_audience, make_service


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        del server, session
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def mail_env(engine: Engine, factory: sessionmaker[Session], smtp: tuple[Inbox, int]) -> Env:
    clock = Clock()
    service = make_service(
        engine, factory, clock, smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_tls="none",
        smtp_from="alerts@audience-sync.test",
    )  # fmt: skip
    tenant_id, audience_id = make_audience(service)
    return Env(service, clock, tenant_id, audience_id)


def test_an_alert_and_its_resolution_arrive_by_email(
    mail_env: Env, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    new = alerts.NewChannel(kind="email", to=["ops@audience-sync.test"])
    channel = alerts.create_channel(mail_env.service, mail_env.tenant_id, new)
    mail_env.ended(SyncStatus.FAILED, error="Meta refused the request")
    mail_env.ended(SyncStatus.COMPLETED, members=10, failed=0)
    assert [to for to, _ in inbox.messages] == [["ops@audience-sync.test"]] * 2
    raised, resolved = (mail for _, mail in inbox.messages)
    assert raised["Subject"].startswith("[Audience Sync] Alert: Sync of 'VIP buyers'")
    assert raised["From"] == "alerts@audience-sync.test"
    assert "Meta refused the request" in raised.get_payload()
    assert resolved["Subject"].startswith("[Audience Sync] Resolved:")
    assert alerts.send_test(mail_env.service, mail_env.tenant_id, channel.id)["status"] == "sent"
    assert inbox.messages[-1][1]["Subject"] == "[Audience Sync] Test alert: this channel works"


def test_without_an_smtp_server_the_delivery_says_so(env: Env) -> None:
    new = alerts.NewChannel(kind="email", to=["ops@audience-sync.test"])
    channel = alerts.create_channel(env.service, env.tenant_id, new)
    failed = alerts.send_test(env.service, env.tenant_id, channel.id)
    assert failed["last_error"] == "no SMTP server is set (AUDIENCE_SYNC_SMTP_HOST)"


def test_an_address_cannot_smuggle_a_header(env: Env) -> None:
    new = alerts.NewChannel(kind="email", to=["ops@x.test\nBcc: someone@y.test"])
    with pytest.raises(FieldError):
        alerts.create_channel(env.service, env.tenant_id, new)
