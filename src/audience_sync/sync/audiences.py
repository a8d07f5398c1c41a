"""The engine's one rule about an audience's life: nothing is queued for a deleted one.

Creating, changing and purging audiences are the application's (`services.audiences`)."""

from __future__ import annotations

from audience_sync.exceptions import ValidationError


class AudienceDeletedError(ValidationError):
    """The audience was deleted: nothing can be queued for it any more."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Audience {name!r} was deleted; create a new one.")
