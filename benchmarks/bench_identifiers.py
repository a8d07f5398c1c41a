"""Normalizing and hashing identifiers: `hash_many` against a naive per-item loop and Meta's SDK."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from audience_sync.domain.models import IdentifierType
from audience_sync.identifiers import bulk, hash_many, hash_series, normalize
from benchmarks import BenchOptions, Table, median_seconds, peak_kb, register
from benchmarks.messy import GENERATORS, emails, mixed_emails, raw_phones

IDENTIFIER_TYPES = ("email", "phone", "mobile_id")  # hash_series is measured for these
CASES: list[tuple[str, str]] = [
    *((field, platform) for field in IDENTIFIER_TYPES
      for platform in ("meta", "google", "tiktok", "snapchat")),
    # Enhanced fields: one of each code path (last_name runs first_name's, state country's), at
    # a quarter of the rows (and their baselines at a quarter of those, as every case's: see
    # `_measure`): their only target is to beat Meta's SDK, by 10× or more, and at the full
    # size they took a third of this benchmark's time.
    *((field, "meta") for field in ("external_id", "first_name", "city", "zip", "country",
                                    "gender")),
]  # fmt: skip
STREAM_CHUNKS = (250_000, 1_000_000)
RAW_PHONE_ROWS = 20_000  # every raw phone is a full libphonenumber parse: a sample is enough
MIXED = "email (20% non-ASCII)"  # `messy.mixed_emails`: accented names, IDN domains
# `BENCH_IDENTIFIERS=email,mobile_id/tiktok,phone make bench` measures only those cases (a field,
# or field/platform; `email_mixed`, `raw_phone` and `memory` name the last three parts): a
# quicker run while tuning. Unset, everything is measured.
ONLY = {name for name in os.environ.get("BENCH_IDENTIFIERS", "").split(",") if name}


def _wanted(*names: str) -> bool:
    return not ONLY or any(name in ONLY for name in names)


def spec_hash_identifier(value: str, identifier_type: str, platform: str) -> str:
    """A naive per-item `hash_identifier` (the first design's; its `platform` made a parameter)."""
    if identifier_type == IdentifierType.EMAIL:
        normalized = value.strip().lower()
    elif identifier_type == IdentifierType.PHONE:
        # Remove non-digits except +
        normalized = "".join(c for c in value if c.isdigit() or c == "+")
        # Remove + for most platforms
        if platform != "tiktok":
            normalized = normalized.lstrip("+")
    else:
        normalized = value.strip()
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def _sdk_runner(field: str, values: list[str]) -> Any:
    """A call of Meta's SDK normalizing and hashing these values its own way, or None."""
    try:
        from facebook_business.adobjects.customaudience import CustomAudience
    except ImportError:  # facebook-business is a dev dependency
        return None
    if field == "email":  # single-key EMAIL_SHA256: the SDK trims and lowercases
        return lambda: CustomAudience.format_params(CustomAudience.Schema.email_hash, values)
    keys = CustomAudience.Schema.MultiKeySchema
    key = {
        "phone": keys.phone,  # single-key PHONE_SHA256 would hash "+1650…" as is
        "mobile_id": keys.madid,
        "external_id": keys.extern_id,
        "first_name": keys.fn,
        "last_name": keys.ln,
        "city": keys.ct,
        "state": keys.st,
        "zip": keys.zip,
        "country": keys.country,
        "gender": keys.gen,
    }[field]
    rows = [[v] for v in values]  # the SDK's input shape, built outside the timing
    return lambda: CustomAudience.format_params([key], rows, is_raw=True)


@dataclass(slots=True)
class Row:
    field: str
    platform: str
    rows: int
    fast: float
    column: float | None
    naive: float
    sdk: float | None
    dropped: float
    baseline_rows: int = 0  # the values the naive loop and the SDK were timed on (0: `rows`)

    def per_value(self, seconds: float, *, baseline: bool = False) -> float:
        """Seconds a value: the baselines' over the values they were timed on."""
        return seconds / (self.baseline_rows or self.rows if baseline else self.rows)

    def times_faster(self, seconds: float | None) -> float | None:
        """How many times faster `hash_many` ran than a baseline that took `seconds`."""
        if seconds is None:
            return None
        return self.per_value(seconds, baseline=True) / self.per_value(self.fast)

    def cells(self) -> list[str]:
        def rate(seconds: float | None, baseline: bool = False) -> str:
            if seconds is None:
                return "—"
            return f"{1 / self.per_value(seconds, baseline=baseline) / 1e6:.2f}"

        def ratio(seconds: float | None) -> str:
            times = self.times_faster(seconds)
            return "—" if times is None else f"{times:.1f}×"

        baseline = f" ({self.baseline_rows:,})" if self.baseline_rows else ""
        return [
            self.field,
            self.platform,
            f"{self.rows:,}{baseline}",
            rate(self.fast),
            rate(self.column),
            rate(self.naive, baseline=True),
            ratio(self.naive),
            rate(self.sdk, baseline=True),
            ratio(self.sdk),
            f"{self.dropped:.1%}",
        ]


def _measure(
    field: str,
    platform: str,
    values: list[str | None],
    repeat: int,
    column: bool = True,
    baseline_rows: int = 0,
) -> Row:
    """`hash_many` (and `hash_series`) on `values`; the naive loop and the SDK on the first
    `baseline_rows` of them (0: all). A per-item loop's rate does not depend on how many
    items it is given; the compiled path's fixed costs do, so it always gets every value."""
    shown = values[:baseline_rows] if baseline_rows else values
    baseline = ["" if v is None else v for v in shown]  # neither baseline can take None
    series = pl.Series(values, dtype=pl.String)
    sdk = _sdk_runner(field, baseline) if platform == "meta" else None
    sent = hash_many(values, field, platform)
    picks = random.Random(0).sample(range(len(values)), min(2_000, len(values)))
    expected = [normalize(values[i], field, platform)[0] for i in picks]
    assert [sent[i] for i in picks] == expected, f"{field}/{platform}: fast path ≠ reference"

    gc.collect()
    runs: dict[str, Callable[[], Any]] = {
        "fast": lambda: hash_many(values, field, platform),
        "naive": lambda: [spec_hash_identifier(v, field, platform) for v in baseline],
    }
    if field in IDENTIFIER_TYPES and column:
        runs["column"] = lambda: hash_series(series, field, platform)
    if sdk is not None:
        runs["sdk"] = sdk
    times = _taking_turns(runs, repeat)
    dropped = sum(s is None for s in sent) / len(sent)
    return Row(
        field,
        platform,
        len(values),
        times["fast"],
        times.get("column"),
        times["naive"],
        times.get("sdk"),
        dropped,
        baseline_rows if baseline_rows and baseline_rows < len(values) else 0,
    )


def _taking_turns(runs: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """The median wall time of each run, `repeat` rounds in which every run takes its turn: on
    a shared machine the load changes from second to second, and a ratio of two medians timed
    minutes apart would measure that change as much as the code."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            times[name].append(median_seconds(run, 1))
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def _memory_child(total: int, chunk: int) -> None:
    """Run in a fresh process: hash `total` emails for Meta in chunks, report peak memory."""
    import psutil

    base = emails(chunk, seed=9)
    process = psutil.Process()
    before = process.memory_info().rss
    usable = 0
    for start in range(0, total, chunk):  # the input of one chunk is made, hashed and dropped
        # A different value set per chunk: the chunk's number goes into each local part.
        tag = f".{start // chunk}@"
        values = [None if v is None else v.replace("@", tag, 1) for v in base[: total - start]]
        usable += sum(s is not None for s in hash_many(values, "email", "meta"))
        del values
    peak = _peak_rss()
    print(json.dumps({"before": before, "peak": peak, "usable": usable, "total": total}))


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (`peak_kb`); `ru_maxrss` where `/proc` has
    no such figure."""
    if kb := peak_kb():
        return kb * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory(total: int, chunk: int) -> dict[str, int]:
    code = (
        f"from benchmarks.bench_identifiers import _memory_child; _memory_child({total}, {chunk})"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@register("identifiers")
def bench_identifiers(options: BenchOptions) -> None:
    """hash_many per identifier type and platform, with the naive loop and Meta's SDK."""
    # A million values a case: at 250,000 the non-ASCII mix's margin over the naive loop shrank
    # (3.0–3.5× in one run, against 3.6–3.9× at a million), fixed costs weighing more.
    rows, repeat = options.rows_or(1_000_000), options.repeat_or(3)
    print(
        f"M/s = million values per second, median of {repeat} runs on the same rows "
        "(each case's functions taking turns, round by round); "
        "naive = a per-item hash_identifier loop; Meta SDK = facebook-business "
        "CustomAudience.format_params (EMAIL_SHA256, else multi-key with is_raw); hash_series "
        "= column in, column out (no Python lists). The baselines get '' for missing values, "
        "which they cannot take; where rows shows a second figure, they were timed on that "
        "many of the values (the first ones), their rates per value as the others'."
    )
    hasher = (
        "OpenSSL, through the compiled audience_sync.identifiers._digest"
        if bulk._DIGEST is not None
        else "the polars-hash plugin (_digest is not built: no gcc or OpenSSL headers)"
    )
    print(f"hash_many hashes with {hasher}; hash_series with the polars-hash plugin.\n")
    table = Table(
        ["field", "platform", "rows", "hash_many M/s", "hash_series M/s", "naive M/s",
         "hash_many ÷ naive", "Meta SDK M/s", "hash_many ÷ SDK", "dropped"],
        [21, 8, 19],
    )  # fmt: skip
    data: dict[str, list[str | None]] = {}
    results = []
    for field, platform in CASES:
        if not _wanted(field, f"{field}/{platform}"):
            continue
        if field not in data:
            data[field] = GENERATORS[field](rows if field in IDENTIFIER_TYPES else rows // 4, 1)
        # The baselines on a quarter of the values, as the enhanced fields' are: at every value
        # they took two thirds of this benchmark's time. The non-ASCII mix, whose margin over
        # the naive loop is the target closest to its bound, keeps them on every value.
        quarter = len(data[field]) // 4
        results.append(_measure(field, platform, data[field], repeat, baseline_rows=quarter))
        table.row(results[-1].cells())
    mixed: list[str | None] = []  # made once, for the four platforms
    for platform in ("meta", "google", "tiktok", "snapchat"):
        if not _wanted("email_mixed", f"email_mixed/{platform}"):
            continue
        mixed = mixed or mixed_emails(rows)
        results.append(_measure_mixed(platform, mixed, repeat))
        table.row(results[-1].cells())
    for platform in ("meta", "google"):
        if not _wanted("raw_phone", f"raw_phone/{platform}"):
            continue
        results.append(_measure_raw_phone(platform, repeat))
        table.row(results[-1].cells())
    print()
    for chunk in STREAM_CHUNKS if _wanted("memory") else ():
        memory = _memory(options.stream_rows, chunk)
        print(
            f"Peak memory hashing {memory['total']:,} emails for Meta, streamed in chunks of "
            f"{chunk:,} in a fresh process: {memory['peak'] / 2**20:,.0f} MiB peak RSS "
            f"({memory['before'] / 2**20:,.0f} MiB before hashing, one chunk of input held); "
            f"{memory['usable']:,} usable."
        )
    _verdicts(results)


def _measure_mixed(platform: str, emails: list[str | None], repeat: int) -> Row:
    """Emails of which a fifth hold non-ASCII text (`mixed_emails`), against the naive loop.
    hash_series is not timed: its non-ASCII rows but Latin-1 ones go through the per-item
    reference."""
    row = _measure("email", platform, emails, repeat, column=False)
    row.field = MIXED
    return row


def _measure_raw_phone(platform: str, repeat: int) -> Row:
    row = _measure("phone", platform, raw_phones(RAW_PHONE_ROWS), repeat)
    row.field = "phone (raw, parsed)"
    return row


def _verdicts(results: list[Row]) -> None:
    checks = []
    for row in results:
        naive = row.times_faster(row.naive) or 0.0
        if row.field in ("email", "mobile_id", MIXED):
            checks.append((f"{row.field}/{row.platform} ≥ 3× naive", naive >= 3))
        if row.field == "phone":
            rate = 1 / row.per_value(row.fast)
            checks.append((f"stored phone/{row.platform} ≥ 1M/s", rate >= 1e6))
        sdk = row.times_faster(row.sdk)
        if sdk is not None and not row.field.startswith("phone (raw"):  # the SDK only strips
            checks.append((f"{row.field}/{row.platform} faster than Meta SDK", sdk > 1))
    print("\nTargets (identifier hashing), this run:")
    for name, ok in checks:
        print(f"  {'met    ' if ok else 'NOT MET'}  {name}")
