"""Ids as people type them: a whole UUID, or a unique prefix of one (the CLI's tables show 8)."""

from __future__ import annotations

import string
import uuid
from typing import Any

from sqlalchemy.orm import Session

from audience_sync.exceptions import NotFoundError, ValidationError
from audience_sync.store.repositories import TenantScoped

MIN_PREFIX = 4
HEX = frozenset(string.hexdigits + "-")


def looks_like_id(text: str) -> bool:
    """Whether `text` can name an id: a whole UUID, or hex digits (and dashes) long enough."""
    text = text.strip()
    return len(text) >= MIN_PREFIX and set(text) <= HEX


def resolve(session: Session, tenant_id: int, model: type[Any], what: str, text: str) -> uuid.UUID:
    """The id `text` names: a whole UUID as it is, else the one id of the tenant's `model`
    rows that starts with it. `what` names the object in messages ("audience")."""
    text = text.strip().lower()
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    if not looks_like_id(text):
        raise ValidationError(
            f"{text!r} is not a {what} id: give the whole id or at least its first "
            f"{MIN_PREFIX} characters."
        )
    found = TenantScoped(session, tenant_id).ids_starting_with(model, text, limit=11)
    if not found:
        raise NotFoundError(f"No {what} id starts with {text!r}.")
    if len(found) > 1:
        many = f"{len(found)}" if len(found) <= 10 else "more than 10"
        raise ValidationError(
            f"{many} {what}s have an id starting with {text!r}; give more characters."
        )
    return found[0]
