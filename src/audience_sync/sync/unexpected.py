"""Errors no step expected (a bug; a database, Polars or OS error), told without member data.

The run boundary (`runner.run_job`) fails the job with `INTERNAL_ERROR` and logs `report(error)`.
Messages of such errors can quote the data they failed on: a Polars cast names the values it
could not convert, a PostgreSQL `DETAIL` line quotes a key, a `KeyError` is its key. So the
report keeps the error's type and where it happened in the code (the traceback's frames: file,
line, function and the line's source, never a frame's variables), and only a scrubbed first line
of its message: quoted and bracketed text, every word with a digit in it (ids, phones, postal
codes) and hex digests left out, then emails and tokens redacted (`log.redact_text`) and
control characters escaped. Our own messages never quote member data (I5); a name that a
third-party message gave unquoted would still pass.
"""

from __future__ import annotations

import re
import traceback
import uuid

from audience_sync.log import escape_control, redact_text

INTERNAL_ERROR = (
    "The sync stopped on an internal error; nothing more was sent. The error was logged for "
    "the operator (reference {job_id})."
)
# How much of an error's chain (its cause, and the cause's cause) is told, and how long a message.
CHAIN = 3
MESSAGE_CHARS = 200

_DATA = (
    re.compile(r"'[^']*'|\"[^\"]*\""),  # quoted values
    re.compile(r"\[[^\]]*\]"),  # lists of values
    re.compile(r"=\([^)]*\)"),  # PostgreSQL's DETAIL: Key (column)=(value)
    re.compile(r"[^\s,;:()]*\d[^\s,;:()]*"),  # any word with a digit: ids, phones, digests
    re.compile(r"\b[0-9a-fA-F]{16,}\b"),  # a digest with no digit in it
)


def internal_error(job_id: uuid.UUID) -> str:
    """What the marketer reads on the failed job."""
    return INTERNAL_ERROR.format(job_id=job_id)


def scrubbed(message: str) -> str:
    """The first line of an error's message with what could be member data left out."""
    line = message.strip().split("\n", 1)[0]
    for pattern in _DATA:
        line = pattern.sub("…", line)
    line = escape_control(redact_text(line))
    return line if len(line) <= MESSAGE_CHARS else line[:MESSAGE_CHARS] + "…"


def report(error: BaseException) -> str:
    """The error for the operator's log: type, scrubbed message and frames, then its causes."""
    parts: list[str] = []
    seen: BaseException | None = error
    for _ in range(CHAIN):
        if seen is None:
            break
        if parts:
            parts.append("caused by:")
        parts.append(f"{type(seen).__module__}.{type(seen).__qualname__}: {scrubbed(str(seen))}")
        parts += [line.rstrip() for line in traceback.format_tb(seen.__traceback__)]
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return "\n".join(parts)
