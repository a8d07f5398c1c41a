"""A file's bytes as UTF-8 chunks: BOMs stripped, UTF-16 (by its BOM) or a named encoding
transcoded as the file is read, so line splitting on `\\n` stays right whatever the encoding."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from audience_sync.exceptions import ValidationError

CHUNK_BYTES = 1 << 20
# An undecodable byte in a named encoding becomes this UTF-8-invalid byte, so the line holding
# it is rejected (with the encoding named) instead of being silently mangled.
_MARK = "\udcff"
_ERRORS = "audience_sync_mark"
UTF8_NAMES = frozenset({"utf_8", "utf_8_sig"})


def _mark(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return _MARK * max(1, exc.end - exc.start), exc.end


codecs.register_error(_ERRORS, _mark)


@dataclass(frozen=True, slots=True)
class Encoding:
    """What the reader decided: `name` as shown to users, `transcoded` when bytes are converted."""

    name: str
    transcoded: bool

    @property
    def invalid_reason(self) -> str:
        """Why a line with bytes that do not decode is rejected; the reason names no value."""
        if self.transcoded:
            return f"holds bytes that are not valid {self.name}; check --encoding"
        return (
            "not valid UTF-8; if the file is in another encoding, pass --encoding, "
            "e.g. --encoding cp1252"
        )


def lookup(name: str) -> str:
    """The codec's canonical name, or a ValidationError saying what to pass instead."""
    try:
        return codecs.lookup(name.strip()).name
    except LookupError:
        shown = name.encode("ascii", "backslashreplace").decode()[:40]
        raise ValidationError(
            f"Unknown encoding {shown!r}: pass a name Python knows, e.g. utf-8, cp1252, "
            "latin-1, shift_jis or utf-16."
        ) from None


def utf8_chunks(
    stream: IO[bytes],
    encoding: str | None,
    on_bytes: Callable[[int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> tuple[Encoding, Iterator[bytes]]:
    """The stream's content as UTF-8 chunks (split anywhere), and the encoding it was read as.

    Without `encoding`: UTF-8 (a BOM is dropped), or UTF-16 LE/BE when the file starts with its
    BOM. `on_bytes` gets the count of bytes read from `stream`, before any transcoding."""
    codec = lookup(encoding) if encoding else None
    first = stream.read(chunk_bytes)
    if on_bytes is not None and first:
        on_bytes(len(first))
    if codec is None:
        if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            codec = "utf-16"
        else:
            codec = "utf_8"
    if codec in UTF8_NAMES:
        first = first.removeprefix(codecs.BOM_UTF8)
        return Encoding("UTF-8", False), _passthrough(first, stream, on_bytes, chunk_bytes)
    return Encoding(codec, True), _transcoded(codec, first, stream, on_bytes, chunk_bytes)


def _passthrough(
    first: bytes, stream: IO[bytes], on_bytes: Callable[[int], None] | None, size: int
) -> Iterator[bytes]:
    if first:
        yield first
    yield from _rest(stream, on_bytes, size)


def _rest(stream: IO[bytes], on_bytes: Callable[[int], None] | None, size: int) -> Iterator[bytes]:
    while chunk := stream.read(size):
        if on_bytes is not None:
            on_bytes(len(chunk))
        yield chunk


def _transcoded(
    codec: str,
    first: bytes,
    stream: IO[bytes],
    on_bytes: Callable[[int], None] | None,
    size: int,
) -> Iterator[bytes]:
    # The "utf-16" codec reads the BOM to pick the byte order and drops it; "utf-8-sig"-like
    # behaviour for other codecs is done below by dropping a leading U+FEFF.
    decoder = codecs.getincrementaldecoder(codec)(errors=_ERRORS)
    started = False
    for chunk in _passthrough(first, stream, on_bytes, size):
        text = decoder.decode(chunk)
        if not started and text:
            text, started = text.removeprefix("\ufeff"), True
        yield text.encode("utf-8", "surrogateescape")
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail.encode("utf-8", "surrogateescape")
