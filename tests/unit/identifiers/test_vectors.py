"""Every worked example of the shared normalization vectors passes, one by one and in bulk."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from audience_sync.identifiers import hash_identifier, hash_many

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[2] / "data" / "normalization.json").read_text(encoding="utf-8")
)


def _name(row: dict[str, Any]) -> str:
    return f"{row['platform']}-{row['type']}-{row['input'].strip()[:24]}"


def test_the_vector_file_is_the_shared_one_in_full() -> None:
    assert len(VECTORS) >= 26
    assert {row["platform"] for row in VECTORS} == {"meta", "google", "tiktok", "snapchat"}


@pytest.mark.parametrize("row", VECTORS, ids=_name)
def test_hash_identifier_sends_what_the_vector_says(row: dict[str, Any]) -> None:
    sent = hash_identifier(row["input"], row["type"], row["platform"], region=row["region"])
    assert sent == row["expected"]


@pytest.mark.parametrize("row", VECTORS, ids=_name)
def test_hash_many_sends_what_the_vector_says(row: dict[str, Any]) -> None:
    sent = hash_many([row["input"]], row["type"], row["platform"], region=row["region"])
    assert sent == [row["expected"]]


def test_hash_many_sends_every_vector_in_one_batch_per_field() -> None:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in VECTORS:
        groups[(row["type"], row["platform"], row["region"])].append(row)
    for (field, platform, region), rows in groups.items():
        # Padded with blanks so the batch is bigger than one row and order matters.
        values = [None, *(row["input"] for row in rows), "  "]
        expected = [None, *(row["expected"] for row in rows), None]
        assert hash_many(values, field, platform, region=region) == expected
