"""Identifier normalization and hashing for every platform (pure code).

The rules, and their sources, are `docs/normalization.md`; which variant of each rule a
platform follows is its `PlatformRules` (`identifiers.platforms`).

- `hash_identifier(value, type, platform, region=)` — what is sent for one value, or None.
- `hash_many(values, type, platform, region=)` — the same for a sequence, on the fast path.
- `hash_many_with_reasons(...)` — plus the reason code of every dropped value (diagnostics).
- `hash_series(series, ...)` — column in, column out, for columnar callers;
  `hash_series_with_reasons(...)` — plus each row's reason code, as a column.
- `expand_date_of_birth(value)` — Meta's DOBY/DOBM/DOBD keys, hashed.
- `parse_phone_e164(raw, region)` — parse a phone once, at import; `normalize_country(value)`.
- `parse_international_phone(raw)` — the same for a phone written with its country code only.
"""

from __future__ import annotations

from audience_sync.identifiers.bulk import (
    BulkResult,
    hash_many,
    hash_many_with_reasons,
    hash_series,
    hash_series_with_reasons,
)
from audience_sync.identifiers.fields import Field, Reason
from audience_sync.identifiers.geo import normalize_country
from audience_sync.identifiers.phone import parse_international_phone, parse_phone_e164
from audience_sync.identifiers.platforms import PlatformRules, register_rules, rules_for
from audience_sync.identifiers.rules import (
    DOB_KEYS,
    date_of_birth_reason,
    drop_reason,
    expand_date_of_birth,
    hash_identifier,
    is_hashed,
    normalize,
    split_date_of_birth,
)

__all__ = [
    "DOB_KEYS",
    "BulkResult",
    "Field",
    "PlatformRules",
    "Reason",
    "date_of_birth_reason",
    "drop_reason",
    "expand_date_of_birth",
    "hash_identifier",
    "hash_many",
    "hash_many_with_reasons",
    "hash_series",
    "hash_series_with_reasons",
    "is_hashed",
    "normalize",
    "normalize_country",
    "parse_international_phone",
    "parse_phone_e164",
    "register_rules",
    "rules_for",
    "split_date_of_birth",
]
