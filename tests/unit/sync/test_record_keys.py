"""`keys.RecordKeys`: a run's record keys left in their files (and a few frames), read a piece
at a time, answer as the frame of all of them would."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.sync import keys as keys_module
from audience_sync.sync.keys import KEY_SCHEMA, RecordKeys
from audience_sync.sync.plan import KEYS
from audience_sync.sync.update import first_of_each

ROW = st.tuples(
    st.integers(0, 6),  # k1: few values, so keys repeat
    st.integers(0, 3),  # k2
    st.integers(0, 40),  # owner
    st.booleans(),  # keyless (a member with no record, in a state part)
)
PIECE = st.tuples(st.lists(ROW, max_size=12), st.booleans())  # rows, in a file


def spilled(
    pieces: list[tuple[list[tuple[int, int, int, bool]], bool]], folder: Path
) -> tuple[RecordKeys, pl.DataFrame]:
    """The pieces as `RecordKeys` (files, or frames; a file's keyless rows kept in it, as a
    state part holds them), and the frame of every key they hold, in order."""
    keys = RecordKeys()
    every = [pl.DataFrame(schema=KEY_SCHEMA)]
    for number, (rows, in_file) in enumerate(pieces):
        frame = pl.DataFrame(
            [(None if keyless else k1, k2, owner, 7) for k1, k2, owner, keyless in rows],
            schema={**KEY_SCHEMA, "content": pl.UInt64},
            orient="row",
        )
        if in_file:
            path = folder / f"piece-{number}.arrow"
            frame.write_ipc(path)
            keys.add(path, frame)
        else:
            keys.add(frame, frame)
        every.append(frame.filter(pl.col("k1").is_not_null()).select(*KEY_SCHEMA))
    return keys, pl.concat(every)


@settings(
    deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pieces=st.lists(PIECE, max_size=6), stretch=st.integers(1, 20))
def test_the_pieces_answer_as_the_whole(
    tmp_path_factory: pytest.TempPathFactory, pieces: list, stretch: int
) -> None:
    keys, whole = spilled(pieces, tmp_path_factory.mktemp("keys"))
    assert len(keys) == len(whole)
    assert keys.is_empty() == whole.is_empty()
    assert keys.frame().equals(whole)
    wanted = pl.col("k1").is_in([1, 4])
    assert keys.filter(wanted).equals(whole.filter(wanted))
    owners = pl.Series("owner", [3, 17, 18, 40], pl.Int64)
    mine = whole.filter(pl.col("owner").is_in(owners.implode()))
    assert keys.of_owners(owners).equals(mine)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys_module, "STRETCH", stretch)
        assert keys.distinct("k1") == whole["k1"].n_unique()
        assert keys.distinct("owner") == whole["owner"].n_unique()
        repeats = sorted(keys.repeated("k1").to_list())
    counts = whole["k1"].value_counts()
    assert repeats == sorted(counts.filter(pl.col("count") > 1)["k1"].to_list())


@settings(
    deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pieces=st.lists(PIECE, max_size=6))
def test_first_of_each_leaves_out_the_rows_the_frames_would_drop(
    tmp_path_factory: pytest.TempPathFactory, pieces: list
) -> None:
    """A create's adds stay in their files: `first_of_each` leaves out the later rows of each
    shared key, and reading them back gives the frame's `first_of_each`."""
    keys, whole = spilled(pieces, tmp_path_factory.mktemp("keys"))
    expected = whole.unique(KEYS, keep="first", maintain_order=True)
    firsts = first_of_each(keys)
    assert len(firsts) == len(expected)
    assert firsts.frame().equals(expected)
    by_piece = [
        frame if (mask := firsts.left_in(number)) is None else frame.filter(mask)
        for number, frame in enumerate(keys.frames())
    ]
    assert pl.concat([keys.clear(), *by_piece]).equals(expected)


def test_pieces_out_of_owner_order_are_all_read_for_owners(tmp_path: Path) -> None:
    """`of_owners` reads only the pieces an owner span crosses when every piece is in order;
    otherwise every piece, and still finds each owner's keys."""
    keys, _ = spilled(
        [([(1, 1, 9, False), (2, 1, 3, False)], True), ([(3, 1, 5, False)], True)], tmp_path
    )
    found = keys.of_owners(pl.Series([3, 5], dtype=pl.Int64))
    assert sorted(found["owner"].to_list()) == [3, 5]


def test_joined_keys_continue_the_places(tmp_path: Path) -> None:
    first, _ = spilled([([(1, 1, 1, False), (2, 1, 2, False)], True)], tmp_path)
    second = RecordKeys.of(pl.DataFrame({"k1": [1], "k2": [1], "owner": [3]}, schema=KEY_SCHEMA))
    both = first + second
    assert len(both) == 3
    assert both.numbered(pl.lit(True))["row"].to_list() == [0, 1, 2]
    assert first_of_each(both).frame()["owner"].to_list() == [1, 2]
