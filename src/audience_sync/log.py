"""Logging setup: structlog over the standard library, to stderr; never identifiers or tokens."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Last line of defence (I5): code never logs identifiers or tokens on purpose; this scrubs what a
# third-party message or an exception text might still carry.
_REDACTIONS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"(?i)\bBearer\s+[\w.~+/=-]+"), "Bearer [redacted]"),
    (
        re.compile(
            r"(?i)\b(access_token|refresh_token|client_secret|app_secret|api_key|sig)=[^&\s\"']+"
        ),
        r"\1=[redacted]",
    ),
    (re.compile(r"\bas_[\w-]{20,}"), "as_[redacted]"),  # our API keys
    (re.compile(r"\+\d[\d ().-]{7,}\d"), "[phone]"),
)


# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators: any of them
# in a logged value could end the line and start a forged one (or hide text on a terminal).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x00`, `\\u2028`),
    so a value taken from a request (a path, a header) can never forge or split a log line."""
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def redact_text(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: scrub emails, phones, tokens and keys from every string value."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact_text(value)
    return event


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Route stdlib and structlog records to stderr, as key=value lines (or JSON in production)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    # Replace only our own handler (configuring twice must not stack; others' handlers stay).
    for old in [h for h in root.handlers if getattr(h, "audience_sync", False)]:
        root.removeHandler(old)
    handler.audience_sync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Chatty at INFO; httpx would also log every request URL, and a URL may carry a token.
    for name in ("alembic", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
