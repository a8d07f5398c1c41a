"""What an ad account id may look like, wherever one enters (API, CLI, stored connections).

The id goes into platform URL paths (`/act_<id>/customaudiences`, `customers/<id>`), so a
slash, `?`, `#`, a space or a control character would change which resource is called, or make
the URL unbuildable (a control character was an `httpx.InvalidURL` deep inside a sync). Every
platform's ids fit this rule: Meta `act_1234567890` or `1234567890`, Google `1234567890` or
`123-456-7890`, TikTok advertiser ids (digits), Snapchat ad account ids (UUIDs).
"""

from __future__ import annotations

import re

AD_ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
AD_ACCOUNT_RULE = (
    "an ad account id holds only letters, digits, '-', '_' and '.' (at most 128), e.g. "
    "act_1234567890, 123-456-7890 or a Snapchat ad account UUID"
)


def ad_account_problem(value: str) -> str | None:
    """None when `value` is a usable ad account id; else what is wrong (never the value)."""
    return None if AD_ACCOUNT_ID.fullmatch(value) else AD_ACCOUNT_RULE
