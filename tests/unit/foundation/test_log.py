"""Logs never carry an email, a phone, a token or an API key, whoever wrote the message."""

from __future__ import annotations

import logging

import pytest

from audience_sync.log import configure_logging, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user John.Doe@Example.com failed", "user [email] failed"),
        ("Authorization: Bearer EAAB.abc-123", "Authorization: Bearer [redacted]"),
        ("GET /x?access_token=EAAB123&fields=id", "GET /x?access_token=[redacted]&fields=id"),
        ("download?expires=1&sig=abcdef", "download?expires=1&sig=[redacted]"),
        ("key as_0123456789abcdefghijklmnop used", "key as_[redacted] used"),
        ("call +1 (415) 555-0123 now", "call [phone] now"),
        ("audience 23850000000000001 synced", "audience 23850000000000001 synced"),
    ],
)
def test_redaction_scrubs_identifiers_and_secrets(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_a_stdlib_log_record_is_redacted_on_its_way_out(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("test.third_party").warning("retrying for a@b.example with Bearer tok123")
    logged = capsys.readouterr().err
    assert "a@b.example" not in logged
    assert "tok123" not in logged
    assert "[email]" in logged
    for handler in [h for h in logging.getLogger().handlers if getattr(h, "audience_sync", 0)]:
        logging.getLogger().removeHandler(handler)


def test_configuring_twice_keeps_one_handler_of_ours_and_everyone_elses() -> None:
    root = logging.getLogger()
    others = [h for h in root.handlers if not getattr(h, "audience_sync", False)]
    configure_logging("INFO")
    configure_logging("INFO")
    ours = [h for h in root.handlers if getattr(h, "audience_sync", False)]
    assert len(ours) == 1
    assert [h for h in root.handlers if not getattr(h, "audience_sync", False)] == others
    root.removeHandler(ours[0])
