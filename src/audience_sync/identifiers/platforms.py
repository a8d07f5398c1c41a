"""Each platform's normalization, as data: which fields it takes, which raw, which variant of
a rule it follows. `rules.py` (value by value) and `bulk.py` (in columns) read these flags and
never test which platform they serve, so a platform is normalized by its `PlatformRules` alone.

The built-in platforms' rules are here, beside the rule variants they choose among (the
vectorized paths of `bulk.py` and the C extension implement exactly these variants); a platform
added later brings its own `PlatformRules` in its package, registered with its spec
(`connectors.registry.register_platform`). An unknown platform name is a `ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from audience_sync.identifiers.fields import Field


class EmailRule(IntEnum):
    """How an email's local part is rewritten; the values are `_digest.emails`' `local_rule`."""

    PLAIN = 0  # lowercased, trimmed
    GMAIL = 1  # Google: no whitespace anywhere; gmail.com/googlemail.com without dots or +tag
    PLUS_TAG = 2  # TikTok: the +tag of the local part dropped on any domain, dots kept


@dataclass(frozen=True, slots=True)
class PlatformRules:
    """One platform's normalization (docs/normalization.md gives the sources)."""

    name: str
    supported: frozenset[Field]  # the fields it has a key for; others: unsupported_by_platform
    sent_raw: frozenset[Field] = frozenset()  # sent normalized, not SHA-256-hashed
    email: EmailRule = EmailRule.PLAIN
    phone_with_plus: bool = False  # E.164 hashed with its `+` (else the digits)
    mobile_id_upper: bool = False  # mobile ids uppercased (else lowercased)
    letters_only_names: bool = False  # first and last names keep letters only
    raw_zip: bool = False  # the postal code trimmed only
    upper_country: bool = False  # the country code uppercased
    date_of_birth: bool = False  # takes DOBY/DOBM/DOBD

    def is_hashed(self, field: Field) -> bool:
        return field not in self.sent_raw


_KEYED = frozenset({Field.EMAIL, Field.PHONE, Field.MOBILE_ID})

META = PlatformRules(
    name="meta",
    supported=frozenset(Field),
    sent_raw=frozenset({Field.MOBILE_ID, Field.EXTERNAL_ID}),  # MADID, EXTERN_ID
    letters_only_names=True,
    date_of_birth=True,
)
# Google Customer Match: email, phone, mobile ids (own list type) and the address (names,
# region code, postal code). No city, state, gender or external id key.
GOOGLE = PlatformRules(
    name="google",
    supported=_KEYED | {Field.FIRST_NAME, Field.LAST_NAME, Field.ZIP, Field.COUNTRY},
    # mobileId, address.regionCode, address.postalCode
    sent_raw=frozenset({Field.MOBILE_ID, Field.COUNTRY, Field.ZIP}),
    email=EmailRule.GMAIL,
    phone_with_plus=True,
    mobile_id_upper=True,
    raw_zip=True,
    upper_country=True,
)
TIKTOK = PlatformRules(name="tiktok", supported=_KEYED, email=EmailRule.PLUS_TAG)
SNAPCHAT = PlatformRules(name="snapchat", supported=_KEYED)

_RULES: dict[str, PlatformRules] = {r.name: r for r in (META, GOOGLE, TIKTOK, SNAPCHAT)}
_BUILT_IN = frozenset(_RULES)


def rules_for(platform: object) -> PlatformRules:
    """The rules of a platform, by its name (or key, or the rules themselves); `ValueError`
    for anything else."""
    if isinstance(platform, PlatformRules):
        return platform
    found = _RULES.get(str(platform))
    if found is None:
        raise ValueError(f"unknown platform {platform!r}")
    return found


def register_rules(name: str, rules: PlatformRules) -> None:
    found = _RULES.get(name)
    if found is not None and found != rules:
        raise ValueError(f"platform {name!r} already has other normalization rules")
    _RULES[name] = rules


def unregister_rules(name: str) -> None:
    if name not in _BUILT_IN:
        _RULES.pop(name, None)


as_platform = rules_for  # the name `rules.py` and `bulk.py` have always used
