"""The collector's thresholds are raised while syncs run, and put back after the last one."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from audience_sync.sync.collector import SYNC_THRESHOLDS, rarer_collections


@pytest.fixture(autouse=True)
def own_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(123, 4, 5)
    yield
    gc.set_threshold(*saved)


def test_overlapping_syncs_keep_the_raised_thresholds_until_the_last_ends() -> None:
    first, second = rarer_collections(), rarer_collections()
    with first:
        assert gc.get_threshold() == SYNC_THRESHOLDS
        second.__enter__()
    assert gc.get_threshold() == SYNC_THRESHOLDS  # the second sync still runs
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (123, 4, 5)


def test_a_failing_sync_puts_the_thresholds_back() -> None:
    with pytest.raises(RuntimeError), rarer_collections():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (123, 4, 5)
