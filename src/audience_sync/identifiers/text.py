"""The common text steps of every rule: NFC, trimming, pre-hashed detection, SHA-256."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Unicode's White_Space property, spelled out. Python's str.isspace() also counts the ASCII
# separators \x1c-\x1f, Rust's (Polars') whitespace does not; naming the set keeps the per-item
# rules and the bulk path in agreement.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
ASCII_WHITESPACE = "\t\n\x0b\x0c\r "
WHITESPACE_RUN = re.compile(f"[{re.escape(WHITESPACE)}]+")
_WHITESPACE_SET = frozenset(WHITESPACE)

_PREHASHED = re.compile("[0-9a-fA-F]{64}")


def clean(value: str) -> str:
    """NFC-normalize, then trim leading and trailing whitespace (the first steps of every rule)."""
    return unicodedata.normalize("NFC", value).strip(WHITESPACE)


def has_whitespace(text: str) -> bool:
    """Whether any whitespace character (Unicode White_Space) is in the text."""
    return not _WHITESPACE_SET.isdisjoint(text)


def is_prehashed(text: str) -> bool:
    """Whether the (trimmed) text is exactly 64 hex characters: an already-hashed SHA-256 digest."""
    return _PREHASHED.fullmatch(text) is not None


def is_utf8(text: str) -> bool:
    """Whether the text can be encoded as UTF-8 (a Python str may hold lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sha256_hex(text: str) -> str:
    """The lowercase hex SHA-256 digest of the text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
