"""The request gate in front of `/api/v1`: the key first, then a bounded body, then bounded JSON.

FastAPI reads and parses a route's body before its dependencies run, so a key checked in a
dependency comes too late: an unauthenticated 124 MB POST was read and parsed before its 401.
This pure ASGI middleware (not `BaseHTTPMiddleware`, which would wrap the body stream) answers

1. 401 before reading a byte of the body when the key is missing, wrong or revoked (the key
   lookup is a blocking database call: it runs in a worker thread, off the event loop);
2. 413 when `Content-Length` says the body is larger than `max_request_bytes`, or when a chunked
   body grows past it while being read (reading stops there);
3. 422 when a JSON body nests deeper than `MAX_JSON_DEPTH` or holds an integer longer than
   `MAX_INTEGER_DIGITS` digits (Python's parser raises `RecursionError` or `ValueError` on such
   input deep inside the route, which was a 500).

The tenant of the key travels on in the scope (`TENANT_SCOPE_KEY`), so the routes' dependency does
not look the key up again. Paths outside `/api/v1` (health, metrics, signed downloads) pass as
they are: they take no body and no key.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audience_sync.api.errors import ApiError, field_error, respond, too_large, unauthorized
from audience_sync.services import tenants

TENANT_SCOPE_KEY = "audience_sync.tenant_id"
# Bounds of what the parser is given, looser than the import's rules for one row (nesting 32,
# numbers of 100 digits: `sources.rows`): a batch row past those is rejected alone with its
# reason while the batch's good rows are kept, as in a file import. Python's own parser fails
# at 4,300 digits (int_max_str_digits) and at its recursion limit.
MAX_JSON_DEPTH = 64
MAX_INTEGER_DIGITS = 4000
# Bodies up to this size are checked on the event loop; larger ones in a worker thread, so one
# big batch does not hold up every other request while it is parsed.
INLINE_CHECK_BYTES = 64 * 1024


class RequestGate:
    """Authenticate, bound and pre-check every `/api/v1` request before the app sees it."""

    def __init__(
        self,
        app: ASGIApp,
        factory: sessionmaker[Session],
        max_request_bytes: int,
        prefix: str = "/api/v1",
    ) -> None:
        self.app = app
        self.factory = factory
        self.max_request_bytes = max_request_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _under(route_path(scope), self.prefix):
            await self.app(scope, receive, send)
            return
        try:
            scope[TENANT_SCOPE_KEY] = await self._tenant(scope)
            body = await self._body(scope, receive)
            if body is None:  # the client went away while sending
                return
            await self._check_json(scope, body)
        except ApiError as error:
            await respond(error)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)

    async def _tenant(self, scope: Scope) -> int:
        key = _bearer_key(_header(scope, b"authorization"))
        if not key:
            raise unauthorized("Missing API key: send `Authorization: Bearer KEY`.")
        tenant_id = await anyio.to_thread.run_sync(tenants.authenticate, self.factory, key)
        if tenant_id is None:
            raise unauthorized("Invalid or revoked API key.")
        return tenant_id

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, read only up to the limit (413 past it); None on a disconnect."""
        try:
            return await read_bounded(scope, receive, self.max_request_bytes)
        except BodyTooLargeError:
            raise too_large(self.max_request_bytes) from None

    async def _check_json(self, scope: Scope, body: bytes) -> None:
        if not body or not _may_be_json(_header(scope, b"content-type")):
            return
        if len(body) <= INLINE_CHECK_BYTES:
            problem = json_problem(body)
        else:
            problem = await anyio.to_thread.run_sync(json_problem, body)
        if problem is not None:
            rule, message = problem
            raise field_error("body", rule, message)


class BodyTooLargeError(Exception):
    """The body is larger than the limit (by its `Content-Length`, or as it was read)."""


async def read_bounded(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, read only up to `limit` bytes (`BodyTooLargeError` past it, before the
    rest is read); None when the client went away while sending."""
    declared = _header(scope, b"content-length")
    stated = declared.strip() if declared is not None else ""
    if stated.isdigit() and int(stated) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def json_problem(body: bytes) -> tuple[str, str] | None:
    """`(rule, message)` when the JSON nests too deep or holds too long an integer, else None.

    Input that is not JSON at all passes: the route's own parsing answers it as it always did
    (a 422 naming the position of the error)."""
    try:
        value = json.loads(body, parse_int=_bounded_int)
    except _IntegerTooLongError:
        return "json_integer_size", (
            f"an integer has more than {MAX_INTEGER_DIGITS} digits; send it as a string"
        )
    except RecursionError:
        return "json_depth", _depth_message()
    except ValueError:
        return None
    if _deeper_than(value, MAX_JSON_DEPTH):
        return "json_depth", _depth_message()
    return None


class _IntegerTooLongError(ValueError):
    pass


def _bounded_int(text: str) -> int:
    # Checked before int(): converting a 100,000-digit string is itself the slow part.
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _IntegerTooLongError
    return int(text)


def _depth_message() -> str:
    return f"the JSON nests deeper than {MAX_JSON_DEPTH} levels of objects and arrays"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels (iterative: no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def route_path(scope: Scope) -> str:
    """The path the router matches: without the root path a proxy may mount the app under."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer_key(header: str | None) -> str:
    """The key of an `Authorization: Bearer KEY` header ('' for any other scheme), as
    FastAPI's `HTTPBearer` reads it."""
    scheme, _, key = (header or "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def _may_be_json(content_type: str | None) -> bool:
    """What FastAPI would parse as JSON: no content type, `application/json` or `…+json`."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits as the real one does
    (for the disconnect)."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed
