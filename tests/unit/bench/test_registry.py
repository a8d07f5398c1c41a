"""`python -m benchmarks` picks its benchmarks by name or by group."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository: `benchmarks`

from benchmarks import GROUP_OF, REGISTRY, register, selected


@pytest.fixture(autouse=True)
def registry():
    saved = dict(REGISTRY), dict(GROUP_OF)
    REGISTRY.clear()
    GROUP_OF.clear()
    yield
    REGISTRY.clear(), GROUP_OF.clear()
    REGISTRY.update(saved[0])
    GROUP_OF.update(saved[1])


def noop(options):
    return None


def test_the_default_group_is_what_runs_without_only():
    register("b")(noop)
    register("a")(noop)
    register("huge", group="scale")(noop)

    assert selected(None) == ["a", "b"]
    assert selected(["scale"]) == ["huge"]
    assert selected(["huge", "b"]) == ["b", "huge"]
    assert selected(["default", "scale"]) == ["a", "b", "huge"]


def test_a_name_is_registered_once_and_never_as_a_group():
    register("a")(noop)
    with pytest.raises(ValueError, match="twice"):
        register("a")(noop)
    with pytest.raises(ValueError, match="twice"):
        register("scale")(noop)
    with pytest.raises(ValueError, match="group"):
        register("c", group="nightly")
