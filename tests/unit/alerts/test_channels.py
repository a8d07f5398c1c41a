"""What a channel sends: signed JSON, Slack's shape, and nothing that names a person."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from audience_sync.exceptions import FieldError
from audience_sync.services.alerts.channels import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    Message,
    check_url,
    sign,
    url_hint,
    webhook_request,
)

MESSAGE = Message(
    delivery_id="d-1",
    event="raised",
    rule="sync_failed",
    title="Sync of 'VIP' (meta) failed after its last retry",
    facts={"audience": "VIP", "job_id": "j-1"},
    incident_id="i-1",
    opened_at="2026-12-01T00:00:00+00:00",
    resolved_at=None,
    link="http://127.0.0.1:8000/audiences/a-1",
)


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1700000000, body) == f"t=1700000000,v1={expected}"


def test_a_webhook_gets_the_signed_json_and_the_delivery_id() -> None:
    body, headers = webhook_request(
        {"url": "https://example.net/hook", "secret": "s3cret"}, MESSAGE, 1700000000
    )
    assert headers[SIGNATURE_HEADER] == sign("s3cret", 1700000000, body)
    assert headers[DELIVERY_HEADER] == "d-1"
    data = json.loads(body)
    assert data["type"] == "alert.raised"
    assert data["incident"]["state"] == "open"


def test_a_slack_url_gets_a_text_body() -> None:
    body, _ = webhook_request(
        {"url": "https://hooks.slack.com/services/T/B/X", "secret": None}, MESSAGE, 1
    )
    assert set(json.loads(body)) == {"text"}
    assert "VIP" in json.loads(body)["text"]


@pytest.mark.parametrize(
    "url", ["ftp://example.net/x", "file:///etc/passwd", "https:///nohost", "http://u:p@h.net/"]
)
def test_only_plain_http_urls_are_taken(url: str) -> None:
    with pytest.raises(FieldError):
        check_url(url)


def test_the_hint_shows_no_path() -> None:
    assert url_hint("https://hooks.slack.com/services/T/B/SECRET") == "https://hooks.slack.com/…"
