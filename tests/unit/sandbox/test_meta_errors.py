"""The Meta emulator answers Graph's published error codes in Graph's envelope, on request."""

from __future__ import annotations

import httpx
import pytest

TOKEN = {"access_token": "sandbox-token"}


async def _fault(client: httpx.AsyncClient, code: int, subcode: int | None = None) -> None:
    fault = {"kind": "platform_error", "platform": "meta", "code": code, "subcode": subcode}
    response = await client.post("/_sandbox/faults", json=fault)
    assert response.status_code == 201


async def _create(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/meta/v26.0/act_42/customaudiences", data={"name": "B", **TOKEN})


@pytest.mark.parametrize(
    ("code", "subcode", "words"),
    [
        (368, None, "deemed abusive"),
        (80004, None, "too many calls to this ad-account"),
        (613, 1487742, "too many calls from this ad-account"),
        (17, 2446079, "User request limit reached"),
        (4, None, "Application request limit reached"),
        (200, None, "Permissions error"),
    ],
)
async def test_a_platform_error_fault_answers_in_graphs_envelope(
    client: httpx.AsyncClient, code: int, subcode: int | None, words: str
) -> None:
    await _fault(client, code)
    refused = await _create(client)
    error = refused.json()["error"]
    assert refused.status_code == 400
    assert (error["code"], error.get("error_subcode")) == (code, subcode)
    assert words in error["message"]
    assert error["type"] == "OAuthException"
    assert error["fbtrace_id"]
    assert (await _create(client)).status_code == 200  # one request only


async def test_a_token_error_fault_keeps_its_subcode(client: httpx.AsyncClient) -> None:
    await _fault(client, 190, 460)
    error = (await _create(client)).json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 460)


async def test_a_platform_error_fault_without_a_code_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/_sandbox/faults", json={"kind": "platform_error"})
    assert response.status_code == 422
