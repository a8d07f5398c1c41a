"""How figures read on a page: counts with separators, rates as percents, times as "3 h ago"."""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2

from audience_sync.connectors.registry import platform_spec
from audience_sync.exceptions import UnknownPlatformError


def platform_name(key: object) -> str:
    """ "Meta", "Google Customer Match"…: the registry's display name of a platform key."""
    try:
        return platform_spec(key).display_name
    except UnknownPlatformError:
        return str(key)


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def points(value: float | None, signed: bool = True) -> str:
    """A change of a rate, in percentage points with its sign (without it beside an arrow)."""
    if value is None:
        return ""
    return f"{value * 100:+.1f} pts" if signed else f"{abs(value) * 100:.1f} pts"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """ "3 min ago", "in 2 h": a time relative to now, for tables (the exact time in a title)."""
    if value is None:
        return "—"
    now = now or datetime.now(UTC)
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            break
    else:
        return "just now" if not future else "in a moment"
    return f"in {amount}" if future else f"{amount} ago"


def stamp(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


def install(environment: jinja2.Environment) -> None:
    environment.filters.update(
        count=count, percent=percent, points=points, ago=ago, stamp=stamp, duration=duration
    )
