"""The platform names the service knows: the built-ins (`SyncPlatform`) and any registered later.

The database and the API hold a platform as its name. The built-in platforms' names are the
members of `SyncPlatform`; a platform added through `connectors.registry.register_platform`
brings a `StrEnum` member of its own, registered here, so that a stored name reads back as an
enum member whichever platform it is. An unknown name is an `UnknownPlatformError`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import cast

from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import UnknownPlatformError

_KEYS: dict[str, StrEnum] = {member.value: member for member in SyncPlatform}


def platform_key(name: object) -> SyncPlatform:
    """The key of a known platform, by its name or key; `UnknownPlatformError` otherwise.

    Typed as `SyncPlatform`: a registered platform's key is a `StrEnum` member that behaves
    alike (`.value`, `str()`, equality with its name), and no code compares it by identity
    with anything but a built-in."""
    found = _KEYS.get(str(name))
    if found is None:
        raise UnknownPlatformError(
            f"Unknown platform {name!r}; known platforms: {', '.join(_KEYS)}"
        )
    return cast(SyncPlatform, found)


def known_platforms() -> tuple[str, ...]:
    """Every known platform name, built-ins first."""
    return tuple(_KEYS)


def register_platform_key(key: StrEnum) -> None:
    """Make a platform's name known (`connectors.registry.register_platform` calls this)."""
    found = _KEYS.get(key.value)
    if found is not None and found is not key:
        raise ValueError(f"platform name {key.value!r} is taken")
    _KEYS[key.value] = key


def unregister_platform_key(key: StrEnum) -> None:
    """Forget a registered platform's name (a test's platform, when the test ends)."""
    if key.value in _KEYS and not isinstance(key, SyncPlatform):
        del _KEYS[key.value]
