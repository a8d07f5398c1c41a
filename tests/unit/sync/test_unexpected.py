"""An unexpected error is told to the operator without the member data its message may quote."""

from __future__ import annotations

import uuid

import polars as pl
import pytest

from audience_sync.sync.unexpected import internal_error, report, scrubbed

VALUES = ["jane@example.com", "+16505550003", "0000000B-AAAA-4BBB-8CCC-00000000000B", "CUST-991"]


@pytest.mark.parametrize(
    "message",
    [
        "invalid literal for int() with base 10: 'CUST-991'",
        'conversion failed for 2 values: ["jane@example.com", "+16505550003"]',
        "duplicate key\nDETAIL:  Key (value)=(jane@example.com) already exists.",
        "no record for 0000000B-AAAA-4BBB-8CCC-00000000000B of CUST-991 +16505550003",
    ],
)
def test_a_message_keeps_its_words_and_loses_its_values(message: str) -> None:
    told = scrubbed(message)
    assert told
    assert "\n" not in told
    for value in VALUES:
        assert value not in told


def test_a_message_never_forges_a_log_line_nor_runs_on() -> None:
    assert scrubbed("first\x07 line\r\nsecond line") == "first\\x07 line\\r"
    assert len(scrubbed("x" * 1000)) <= 201


def test_the_report_has_the_type_frames_and_causes_and_no_values() -> None:
    def cast() -> None:
        pl.Series("email", VALUES).cast(pl.Int64)

    try:
        try:
            cast()
        except pl.exceptions.InvalidOperationError as exc:
            raise RuntimeError(f"while casting {VALUES[0]}") from exc
    except RuntimeError as exc:
        told = report(exc)
    assert told.startswith("builtins.RuntimeError: while casting [email]")
    assert "caused by:\npolars.exceptions.InvalidOperationError: conversion from" in told
    assert ", in cast\n" in told  # the frames, down to where it happened
    for value in VALUES:
        assert value not in told


def test_the_marketer_reads_a_reference_to_the_log() -> None:
    job_id = uuid.uuid4()
    message = internal_error(job_id)
    assert "internal error" in message
    assert str(job_id) in message
