"""A tiny emulator of the fake platform, with the test controls the conformance suite uses.

The platform, under `/fake/v1`: `POST audiences` (a name is required), `GET`/`DELETE
audiences/{id}`, `POST audiences/{id}/members:add|remove|replace` with `{"records": [{"key",
"value"}]}`; a value must be a SHA-256 hex digest (else `invalid_record`, the whole request
refused). Bearer tokens: the sandbox's own, or one from `POST /_sandbox/tokens`.

The controls, as the sandbox names them (`/_sandbox/audiences`, `faults`, `requests`,
`tokens`, `rate_limits`), for this one family. It imports nothing from the connectors.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from audience_sync.sandbox.settings import SANDBOX_TOKEN

FAMILY = "fake"
PREFIX = "/fake/v1"
UPLOAD_PATH = r"/members:(add|remove|replace)$"
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass
class Fault:
    kind: str
    path: str = ""
    count: int | None = 1
    status: int = 500
    retry_after: float = 1.0
    delay_seconds: float = 30.0
    hits: int = 0

    def takes(self, path: str) -> bool:
        live = self.count is None or self.hits < self.count
        return live and re.search(self.path, path) is not None


@dataclass
class World:
    audiences: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=lambda: {SANDBOX_TOKEN})
    faults: list[Fault] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7_000_001))


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def create_app() -> FastAPI:
    app = FastAPI()
    world = World()
    app.state.world = world

    @app.middleware("http")
    async def platform(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if not path.startswith(PREFIX):
            answer: Response = await call_next(request)
            return answer
        world.log.append({"method": request.method, "path": path})
        fault = next((f for f in world.faults if f.takes(path)), None)
        if fault is not None:
            fault.hits += 1
            return await _faulted(fault, request, call_next)
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in world.tokens:
            return _error(401, "unauthorized", "invalid token")
        return await call_next(request)

    async def _faulted(fault: Fault, request: Request, call_next: Any) -> Response:
        if fault.kind == "rate_limit":
            after = str(round(fault.retry_after))
            return _error(429, "rate_limited", "slow down", **{"Retry-After": after})
        if fault.kind == "expired_token":
            return _error(401, "token_expired", "the token expired")
        if fault.kind == "timeout":  # processed, the answer held back
            answer: Response = await call_next(request)
            await asyncio.sleep(fault.delay_seconds)
            return answer
        return _error(fault.status, "server_error", "try again")

    @app.post(f"{PREFIX}/audiences")
    async def create(request: Request) -> Response:
        name = str((await request.json()).get("name") or "")
        if not name:
            return _error(400, "invalid_name", "an audience needs a name")
        audience_id = str(next(world.ids))
        world.audiences[audience_id] = {"name": name, "members": set()}
        return JSONResponse({"id": audience_id})

    @app.get(f"{PREFIX}/audiences/{{audience_id}}")
    async def info(audience_id: str) -> Response:
        found = world.audiences.get(audience_id)
        if found is None:
            return _error(404, "not_found", "no such audience")
        return JSONResponse(
            {"id": audience_id, "name": found["name"], "size": len(found["members"])}
        )

    @app.delete(f"{PREFIX}/audiences/{{audience_id}}")
    async def delete(audience_id: str) -> Response:
        if world.audiences.pop(audience_id, None) is None:
            return _error(404, "not_found", "no such audience")
        return JSONResponse({})

    @app.post(f"{PREFIX}/audiences/{{audience_id}}/members:{{verb}}")
    async def members(audience_id: str, verb: str, request: Request) -> Response:
        found = world.audiences.get(audience_id)
        if found is None:
            return _error(404, "not_found", "no such audience")
        records = (await request.json()).get("records") or []
        pairs = {(str(r.get("key")), str(r.get("value"))) for r in records}
        for i, (_, value) in enumerate(sorted(pairs)):
            if not _DIGEST.fullmatch(value):
                return _error(400, "invalid_record", f"records[{i}] is not a SHA-256 digest")
        if verb == "replace":
            found["members"] = set(pairs)
        elif verb == "add":
            found["members"] |= pairs
        elif verb == "remove":
            found["members"] -= pairs
        else:
            return _error(404, "not_found", f"no members:{verb}")
        return JSONResponse({"received": len(records)})

    @app.get("/_sandbox/audiences")
    async def audiences(platform: str | None = None, identifiers: bool = True) -> Any:
        if platform not in (None, FAMILY):
            return []
        out = []
        for audience_id, found in world.audiences.items():
            held: dict[str, set[str]] = {}
            for key, value in found["members"]:
                held.setdefault(key, set()).add(value)
            entry: dict[str, Any] = {
                "audience_id": audience_id,
                "platform": FAMILY,
                "matched": len(found["members"]),
            }
            if identifiers:
                entry["identifiers"] = {k: sorted(v) for k, v in sorted(held.items())}
            out.append(entry)
        return out

    @app.post("/_sandbox/faults", status_code=201)
    async def add_fault(request: Request) -> Any:
        body = await request.json()
        fault = Fault(
            kind=body["kind"],
            path=body.get("path") or "",
            count=body.get("count", 1),
            status=int(body.get("status") or 500),
            retry_after=float(body.get("retry_after") or 1.0),
            delay_seconds=float(body.get("delay_seconds") or 30.0),
        )
        world.faults.append(fault)
        return {"kind": fault.kind}

    @app.get("/_sandbox/faults")
    async def faults() -> Any:
        return [{"kind": f.kind, "count": f.count, "hits": f.hits} for f in world.faults]

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> Any:
        world.faults.clear()
        return {}

    @app.get("/_sandbox/requests")
    async def requests(platform: str | None = None) -> Any:
        return list(world.log) if platform in (None, FAMILY) else []

    @app.post("/_sandbox/tokens")
    async def tokens() -> Any:
        token = secrets.token_urlsafe(16)
        world.tokens.add(token)
        return {"access_token": token, "refresh_token": secrets.token_urlsafe(16)}

    @app.put("/_sandbox/rate_limits")
    async def rate_limits() -> Any:
        return {}  # the fake platform has no budget to lift

    return app
