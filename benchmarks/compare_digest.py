"""Two builds of the compiled `_digest` timed against each other in one process, taking turns.

    PYTHONPATH=src:. nice python -m benchmarks.compare_digest OLD_DIGEST.so [ROUNDS [mixed,ascii]]

`hash_many` of 1,000,000 emails (`messy.mixed_emails`, a fifth non-ASCII, and `messy.emails`)
for each platform, with the build at OLD_DIGEST.so (say, main's, copied aside), the build in
`src`, and the naive loop, one after the other in every round; the medians. `make bench` runs
one build: timed in separate runs minutes apart, two builds' figures on a shared machine differ
by its load as much as by their code. Not run by `make bench`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import statistics
import sys
import time
from types import ModuleType

from audience_sync.identifiers import bulk, normalize
from benchmarks.bench_identifiers import spec_hash_identifier
from benchmarks.messy import emails, mixed_emails

DATA = {"mixed": lambda: mixed_emails(1_000_000), "ascii": lambda: emails(1_000_000, 1)}


def load(path: str) -> ModuleType:
    """The build at `path`, as a module of its own (not under its package's name: CPython would
    hand back the module already loaded by that name)."""
    loader = importlib.machinery.ExtensionFileLoader("_digest", path)
    spec = importlib.util.spec_from_file_location("_digest", path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def compare(
    old: ModuleType, new: ModuleType, values: list[str | None], platform: str, rounds: int
) -> dict[str, float]:
    """The median seconds of `hash_many` with each build, and of the naive loop."""
    sample = values[:50_000]
    expected = [normalize(v, "email", platform)[0] for v in sample]
    for build in (old, new):
        bulk._DIGEST = build
        assert bulk.hash_many(sample, "email", platform) == expected
    base = ["" if v is None else v for v in values]
    times: dict[str, list[float]] = {"old": [], "new": [], "naive": []}
    for _ in range(rounds):
        for name, seconds in times.items():
            start = time.perf_counter()
            if name == "naive":
                [spec_hash_identifier(v, "email", platform) for v in base]
            else:
                bulk._DIGEST = old if name == "old" else new
                bulk.hash_many(values, "email", platform)
            seconds.append(time.perf_counter() - start)
    bulk._DIGEST = new
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def main(argv: list[str]) -> None:
    new = bulk._DIGEST
    assert new is not None, "_digest is not built in src"
    old = load(argv[0])
    rounds = int(argv[1]) if len(argv) > 1 else 7
    for kind in argv[2].split(",") if len(argv) > 2 else list(DATA):
        values = DATA[kind]()
        for platform in ("meta", "google", "tiktok", "snapchat"):
            med = compare(old, new, values, platform, rounds)
            print(
                f"{kind:6} {platform:8} old {med['old'] * 1e3:5.0f} ms "
                f"({med['naive'] / med['old']:.2f}× naive)  new {med['new'] * 1e3:5.0f} ms "
                f"({med['naive'] / med['new']:.2f}× naive)  naive {med['naive'] * 1e3:5.0f} ms  "
                f"new ÷ old {med['new'] / med['old']:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
