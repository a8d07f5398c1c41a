"""Compact in-memory member sets: one `bytes` per member row, keyed by the platform's wire keys.

A member is one row the platform was sent: a single identifier (Snapchat, Meta `EMAIL_SHA256`) or
several (a Meta multi-key row, a Google `userData` with up to 10 identifiers, a TikTok
`batch_data` user). A row is encoded as `code byte + value` per identifier, in key order:
hashed values as their raw digest bytes (32 for SHA-256, 16 for MD5), raw values (Meta `MADID`,
Google `mobileId`) as a length byte and UTF-8. A single SHA-256 identifier is therefore 33 bytes,
and a member costs one small `bytes` object plus one dict slot (about 120 bytes in CPython 3.11,
measured by `tests/e2e/sandbox/measure_capacity.py`).

Matching is simulated deterministically: an identifier "matches" a platform user when the first
four bytes of its digest (of SHA-256 of the raw value for raw keys), read as a fraction of 2**32,
fall under the audience's match rate. A row matches when any of its identifying keys does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import compress, filterfalse, repeat
from operator import itemgetter

Row = bytes
"""An encoded member row."""

_first_byte = itemgetter(0)  # a row's first key code
_match_bytes = itemgetter(slice(1, 5))  # the four bytes that place a one-digest row


class KeyKind(Enum):
    SHA256 = 32
    MD5 = 16
    RAW = 0


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One wire key of a platform: its name, how values are carried, whether it identifies."""

    name: str
    kind: KeyKind
    identifying: bool = True


class KeySpace:
    """The wire keys of one platform, in a fixed order that gives each its one-byte code."""

    def __init__(self, specs: Sequence[KeySpec]) -> None:
        if len(specs) > 255:
            raise ValueError("a key space holds at most 255 keys")
        self.specs: tuple[KeySpec, ...] = tuple(specs)
        self.codes: dict[str, int] = {spec.name: i for i, spec in enumerate(self.specs)}
        # Per code, as plain tuples: `row_matches` runs once per uploaded row, and enum and
        # attribute look-ups there cost more than the comparison itself.
        self.digest_sizes: tuple[int, ...] = tuple(spec.kind.value for spec in self.specs)
        self.identifying: tuple[bool, ...] = tuple(spec.identifying for spec in self.specs)
        # Rows hold their identifiers in code order (`encode`): past this code none identifies.
        self.last_identifying = max(
            (i for i, spec in enumerate(self.specs) if spec.identifying), default=-1
        )

    def __contains__(self, name: object) -> bool:
        return name in self.codes

    def encode(self, pairs: Iterable[tuple[str, str]]) -> Row:
        """Encode `(key, value)` pairs already validated by the platform module.

        Hashed values are hex digests (any case); raw values are UTF-8 text of at most 255 bytes.
        Pairs are sorted by key code so the same identifiers always give the same row.
        """
        parts: list[tuple[int, bytes]] = []
        for name, value in pairs:
            code = self.codes[name]
            if self.specs[code].kind is KeyKind.RAW:
                raw = value.encode()
                parts.append((code, bytes((code, len(raw))) + raw))
            else:
                parts.append((code, bytes((code,)) + bytes.fromhex(value)))
        if len(parts) == 1:
            return parts[0][1]
        parts.sort(key=lambda part: part[0])
        return b"".join(part for _, part in parts)

    def hex_prefix(self, name: str) -> str:
        """The code byte of key `name` as two hex digits: `encode_hex` rows are made of these."""
        return f"{self.codes[name]:02x}"

    def raw_hex(self, name: str, raw: bytes) -> str:
        """A raw identifier (UTF-8, at most 255 bytes) as `encode` stores it, in hex."""
        return f"{self.codes[name]:02x}{len(raw):02x}{raw.hex()}"

    @staticmethod
    def encode_hex(texts: Iterable[str]) -> list[Row]:
        """Rows built as hex text, identifier by identifier in key order: the bytes `encode`
        gives, for a batch at a time."""
        return list(map(bytes.fromhex, texts))

    def rows_of_columns(
        self, keys: Sequence[str], cells: Callable[[int], list[str] | None]
    ) -> list[Row] | None:
        """A batch's rows from its columns: `cells(i)` gives key `keys[i]`'s column as hex text
        of `encode`'s bytes ("" for an empty value), or None when a value has a problem. The
        columns are joined in `encode`'s key order. None when a column has a problem or a row is
        left with no identifier (the callers' loops then find and word it)."""
        parts = []
        for i in sorted(range(len(keys)), key=lambda i: self.codes[keys[i]]):
            column = cells(i)
            if column is None:
                return None
            parts.append(column)
        texts = list(map("".join, zip(*parts, strict=True)))
        if "" in texts:
            return None
        return self.encode_hex(texts)

    def decode(self, row: Row) -> Iterator[tuple[KeySpec, bytes]]:
        """Yield `(spec, value bytes)` per identifier in a row."""
        i, end = 0, len(row)
        while i < end:
            spec = self.specs[row[i]]
            if spec.kind is KeyKind.RAW:
                size = row[i + 1]
                yield spec, row[i + 2 : i + 2 + size]
                i += 2 + size
            else:
                size = spec.kind.value
                yield spec, row[i + 1 : i + 1 + size]
                i += 1 + size

    def render(self, spec: KeySpec, value: bytes) -> str:
        """The wire form of a stored value: lowercase hex for digests, the text for raw keys."""
        return value.decode() if spec.kind is KeyKind.RAW else value.hex()


def _not_held(batch: Iterable[Row], members: dict[Row, float]) -> set[Row]:
    """The batch's rows that `members` does not hold. (Not `batch.keys() - members.keys()`:
    that walks every held row, on each request.)"""
    return set(filterfalse(members.__contains__, batch))


def all_hex(values: Sequence[object], lengths: set[int]) -> bool:
    """Whether every value is a string of hex digits whose length is one of `lengths`: a whole
    column checked at once (one join, one `fromhex`) instead of a regex per value."""
    try:
        joined = "".join(values)  # type: ignore[arg-type]  # TypeError: not all strings
        digits = 2 * len(bytes.fromhex(joined))  # ValueError: a character that is not hex
    except (TypeError, ValueError):
        return False
    # `fromhex` skips ASCII whitespace: then fewer digits were read than there are characters.
    return digits == len(joined) and set(map(len, values)) <= lengths  # type: ignore[arg-type]


def match_point(spec: KeySpec, value: bytes) -> int:
    """Where an identifier falls in [0, 2**32): it matches when under `match_rate * 2**32`."""
    digest = hashlib.sha256(value).digest() if spec.kind is KeyKind.RAW else value
    return int.from_bytes(digest[:4], "big")


class MemberStore:
    """The rows one audience holds, each with the time it was last added, and a matched count.

    `outside` people were added to the audience by something other than its uploads (the
    platform's own UI, another tool): the platform counts them in its size, no upload of ours
    holds them, and a replace or a remove-all takes them out like any member.
    [INFER: every platform's audience can also be edited in its ads manager; what the sizes
    count is each platform's matched people, not which tool added them]
    """

    __slots__ = (
        "_members",
        "_oldest",
        "_threshold",
        "keyspace",
        "match_rate",
        "matched",
        "outside",
    )

    def __init__(self, keyspace: KeySpace, match_rate: float) -> None:
        self.keyspace = keyspace
        self._members: dict[Row, float] = {}
        self.match_rate = match_rate
        self._threshold = int(match_rate * 2**32)
        self.matched = 0
        self.outside = 0
        # No held row was last added before this (None: none held): `expire` scans only when
        # its cut-off passes it, not on every request.
        self._oldest: float | None = None

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, row: object) -> bool:
        return row in self._members

    def __iter__(self) -> Iterator[Row]:
        return iter(self._members)

    def row_matches(self, row: Row) -> bool:
        """Whether any identifying key of the row matches: `match_point` of each, unrolled
        (this runs once or twice per uploaded row)."""
        threshold = self._threshold
        keyspace = self.keyspace
        sizes, identifying, last = (
            keyspace.digest_sizes,
            keyspace.identifying,
            keyspace.last_identifying,
        )
        i, end = 0, len(row)
        while i < end:
            code = row[i]
            if code > last:
                return False
            size = sizes[code]
            if size:  # a digest: its own first four bytes
                if identifying[code] and int.from_bytes(row[i + 1 : i + 5], "big") < threshold:
                    return True
                i += 1 + size
            else:  # a raw value: the first four bytes of its SHA-256
                size = row[i + 1]
                if identifying[code]:
                    digest = hashlib.sha256(row[i + 2 : i + 2 + size]).digest()
                    if int.from_bytes(digest[:4], "big") < threshold:
                        return True
                i += 2 + size
        return False

    def matches(self, rows: Collection[Row]) -> Iterator[bool]:
        """`row_matches` of each row, in order. When every row is a single digest of an
        identifying key (most batches), compared in C: a digest's first four bytes, big-endian,
        are under the threshold exactly when they sort before the threshold's four bytes."""
        sizes, identifying = self.keyspace.digest_sizes, self.keyspace.identifying
        lengths = set(map(len, rows))
        if len(lengths) != 1:
            return map(self.row_matches, rows)
        size = lengths.pop() - 1
        codes = set(map(_first_byte, rows))
        if not all(sizes[code] == size and identifying[code] for code in codes):
            return map(self.row_matches, rows)
        if self._threshold >= 2**32:  # a match rate of 1
            return repeat(True, len(rows))
        if self._threshold <= 0:
            return repeat(False, len(rows))
        return map(self._threshold.to_bytes(4, "big").__gt__, map(_match_bytes, rows))

    def count_matching(self, rows: Collection[Row]) -> int:
        return sum(self.matches(rows))

    def matching(self, rows: Collection[Row]) -> Iterator[Row]:
        """The rows that match, in order."""
        return compress(rows, self.matches(rows))

    def add(self, rows: Iterable[Row], at: float) -> int:
        """Add rows (re-adding refreshes their time); return how many were new."""
        members = self._members
        # In bulk: one dict of the batch (first occurrences in order, as adding them one by
        # one would insert them), then the new ones.
        batch = dict.fromkeys(rows, at)
        new = _not_held(batch, members)
        members.update(batch)
        self.matched += self.count_matching(new)
        if members and (self._oldest is None or at < self._oldest):
            self._oldest = at
        return len(new)

    def add_and_match(self, rows: Sequence[Row], at: float) -> tuple[int, int]:
        """`add`, also returning how many of the rows sent match (each time it was sent): one
        match test per distinct row, where `add` then `count_matching` would make two."""
        members = self._members
        batch = dict.fromkeys(rows, at)
        matching = set(self.matching(batch.keys()))
        new = _not_held(batch, members)
        members.update(batch)
        self.matched += len(new & matching)
        if members and (self._oldest is None or at < self._oldest):
            self._oldest = at
        return len(new), sum(map(matching.__contains__, rows))

    def expire(self, before: float) -> int:
        """Remove every row last added before `before` (its membership lifetime ran out);
        return how many. A scan of the rows only when some row can be that old."""
        if self._oldest is None or before <= self._oldest:
            return 0
        old = [row for row, at in self._members.items() if at < before]
        removed = self.remove(old)
        self._oldest = min(self._members.values(), default=None)
        return removed

    def remove(self, rows: Iterable[Row]) -> int:
        """Remove rows that are held (exact rows); return how many were removed."""
        members = self._members
        held = set(filter(members.__contains__, rows))  # once each, however often sent
        for row in held:
            del members[row]
        self.matched -= self.count_matching(held)
        return len(held)

    def add_outside(self, people: int) -> None:
        """People added outside our uploads: counted in the matched size only."""
        self.outside += people
        self.matched += people

    def remove_added_before(self, when: float) -> int:
        """Remove every row last added before `when` (Google `removeAsOfTime`), and the people
        added outside our uploads (they were added before any replace that asks this)."""
        before = len(self._members)
        self.outside = 0
        self._members = {row: at for row, at in self._members.items() if at >= when}
        self._recount()
        return before - len(self._members)

    def clear(self) -> int:
        removed = len(self._members)
        self._members = {}
        self.matched = self.outside = 0
        self._oldest = None
        return removed

    def set_match_rate(self, match_rate: float) -> None:
        self.match_rate = match_rate
        self._threshold = int(match_rate * 2**32)
        self._recount()

    def _recount(self) -> None:
        self.matched = self.outside + self.count_matching(self._members)

    def identifiers(self) -> dict[str, list[str]]:
        """Every held value grouped by wire key, sorted: what `/_sandbox/audiences` shows."""
        grouped: dict[str, set[str]] = {}
        for row in self._members:
            for spec, value in self.keyspace.decode(row):
                grouped.setdefault(spec.name, set()).add(self.keyspace.render(spec, value))
        return {key: sorted(values) for key, values in sorted(grouped.items())}
