"""Channels: what an alert says, and sending it by webhook (signed JSON, or Slack's shape)
or by e-mail over SMTP.

A webhook's body is signed: `X-Audience-Sync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
of "<t>.<body>" with the channel's secret>`; `X-Audience-Sync-Delivery` carries the delivery's
id, the same on every attempt, for the receiver to drop a repeat (docs/alerts.md).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from audience_sync.config import Settings
from audience_sync.exceptions import FieldError

SIGNATURE_HEADER = "X-Audience-Sync-Signature"
DELIVERY_HEADER = "X-Audience-Sync-Delivery"
# Slack incoming webhooks take `{"text": ...}` (https://api.slack.com/messaging/webhooks;
# https://docs.slack.dev/tools/java-slack-sdk/guides/incoming-webhooks).
SLACK_HOST = "hooks.slack.com"
TIMEOUT_SECONDS = 10.0


class SendError(Exception):
    """A delivery attempt failed; the message is safe to store (no URL, secret or body)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One alert as sent: an incident raised or resolved, or a test."""

    delivery_id: str
    event: str  # raised | resolved | test
    rule: str
    title: str
    facts: dict[str, Any]
    incident_id: str | None
    opened_at: str | None
    resolved_at: str | None
    link: str | None

    @property
    def headline(self) -> str:
        prefix = {"raised": "Alert", "resolved": "Resolved", "test": "Test alert"}[self.event]
        return f"[Audience Sync] {prefix}: {self.title}"

    def text(self) -> str:
        lines = [self.headline, ""]
        lines += [f"{name}: {value}" for name, value in self.facts.items() if value is not None]
        if self.link:
            lines += ["", self.link]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "type": f"alert.{self.event}",
            "rule": self.rule,
            "title": self.title,
            "text": self.text(),
            "incident": {
                "id": self.incident_id,
                "state": "resolved" if self.event == "resolved" else "open",
                "opened_at": self.opened_at,
                "resolved_at": self.resolved_at,
            },
            "facts": self.facts,
            "link": self.link,
        }


def is_slack(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.hostname == SLACK_HOST


def check_url(url: str) -> None:
    """`FieldError` for a webhook URL that is not plain http(s) with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FieldError("url", "scheme", "url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise FieldError("url", "credentials", "url must not carry a user name or password")


def url_hint(url: str) -> str:
    """What a channel may show of its URL: scheme and host (a Slack URL's path is a secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_request(
    target: dict[str, Any], message: Message, timestamp: int
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook delivery."""
    url = str(target["url"])
    data = {"text": message.text()} if is_slack(url) else message.as_json()
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: message.delivery_id}
    if target.get("secret"):
        headers[SIGNATURE_HEADER] = sign(str(target["secret"]), timestamp, body)
    return body, headers


def send_webhook(
    settings: Settings,
    target: dict[str, Any],
    message: Message,
    timestamp: int,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """POST the alert; `SendError` unless the receiver answers 2xx. Redirects are not
    followed (a redirect could point the server at its own network). A given `transport`
    (tests) decides where the request goes: no address is resolved then."""
    url = str(target["url"])
    if transport is None:
        check_address(url, settings.alert_allow_private_webhooks)
    body, headers = webhook_request(target, message, timestamp)
    client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, transport=transport)
    try:
        with client:
            answer = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        raise SendError("the receiver did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise SendError(f"could not reach the receiver ({type(exc).__name__})") from exc
    if not 200 <= answer.status_code < 300:
        raise SendError(f"the receiver answered HTTP {answer.status_code}")


def check_address(url: str, allow_private: bool) -> None:
    """Refuse a host that resolves to a loopback, private, link-local or reserved address,
    unless the operator allows them. (A host whose DNS answer changes between this check and
    the request can still slip through: docs/alerts.md.)"""
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise SendError("the receiver's host name does not resolve") from exc
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if not ip.is_global:
            raise SendError(
                "the receiver's address is private or local (refused; the operator may allow "
                "it with AUDIENCE_SYNC_ALERT_ALLOW_PRIVATE_WEBHOOKS)"
            )


def email_message(settings: Settings, to: list[str], message: Message) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.headline
    mail["From"] = settings.smtp_from
    mail["To"] = ", ".join(to)
    mail["X-Audience-Sync-Delivery"] = message.delivery_id
    mail.set_content(message.text())
    return mail


def send_email(settings: Settings, target: dict[str, Any], message: Message) -> None:
    """Send the alert to the channel's addresses over the settings' SMTP server."""
    if not settings.smtp_host:
        raise SendError("no SMTP server is set (AUDIENCE_SYNC_SMTP_HOST)")
    mail = email_message(settings, list(target["to"]), message)
    try:
        with _smtp(settings) as smtp:
            if settings.smtp_tls == "starttls":
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, _password(settings))
            smtp.send_message(mail)
    except smtplib.SMTPResponseException as exc:
        raise SendError(f"the SMTP server answered {exc.smtp_code}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"could not send the e-mail ({type(exc).__name__})") from exc


def _password(settings: Settings) -> str:
    return settings.smtp_password.get_secret_value() if settings.smtp_password else ""


def _smtp(settings: Settings) -> smtplib.SMTP:
    if settings.smtp_tls == "tls":
        return smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS)
    return smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT_SECONDS)
