"""Alerts: rules (on/off, thresholds), channels (webhook, e-mail), events (incidents and their
deliveries), and a test alert for a channel. docs/alerts.md."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from audience_sync.api.alert_schemas import (
    ChannelIn,
    ChannelOut,
    ChannelsOut,
    DeliveryOut,
    EventsOut,
    RulesIn,
    RulesOut,
    WebhookChannelIn,
)
from audience_sync.api.deps import Ctx, TenantId
from audience_sync.services import alerts

router = APIRouter(prefix="/alerts", tags=["alerts"])
# A channel id is a 32-bit integer in the database: a larger one is a 422, not a query error.
ChannelId = Annotated[int, Path(ge=1, le=2_147_483_647)]


@router.get("/rules", response_model=RulesOut)
def get_rules(ctx: Ctx, tenant_id: TenantId) -> RulesOut:
    """Every rule, on or off, with its threshold (the tenant's or the default)."""
    return RulesOut.model_validate({"rules": alerts.rules_view(ctx.service, tenant_id)})


@router.put("/rules", response_model=RulesOut)
def put_rules(body: RulesIn, ctx: Ctx, tenant_id: TenantId) -> RulesOut:
    """Turn rules on or off and set their thresholds; rules not named stay as they are."""
    changes: dict[str, alerts.RuleChange] = {
        name: alerts.RuleChange(enabled=rule.enabled, threshold=rule.threshold)
        for name, rule in body.rules.items()
    }
    return RulesOut.model_validate({"rules": alerts.put_rules(ctx.service, tenant_id, changes)})


@router.get("/channels", response_model=ChannelsOut)
def list_channels(ctx: Ctx, tenant_id: TenantId) -> ChannelsOut:
    found = alerts.list_channels(ctx.service, tenant_id)
    return ChannelsOut.model_validate({"channels": [alerts.channel_view(c) for c in found]})


@router.post("/channels", response_model=ChannelOut, status_code=status.HTTP_201_CREATED)
def create_channel(body: ChannelIn, ctx: Ctx, tenant_id: TenantId) -> ChannelOut:
    """A webhook (`url`, `secret`) or e-mail (`to`) channel; every rule on goes to it."""
    if isinstance(body, WebhookChannelIn):
        secret = body.secret.get_secret_value() if body.secret else None
        new = alerts.NewChannel(kind="webhook", url=body.url, secret=secret, name=body.name)
    else:
        new = alerts.NewChannel(kind="email", to=list(body.to), name=body.name)
    channel = alerts.create_channel(ctx.service, tenant_id, new)
    return ChannelOut.model_validate(alerts.channel_view(channel))


@router.delete(
    "/channels/{channel_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_channel(channel_id: ChannelId, ctx: Ctx, tenant_id: TenantId) -> Response:
    alerts.delete_channel(ctx.service, tenant_id, channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/channels/{channel_id}/test", response_model=DeliveryOut)
def test_channel(channel_id: ChannelId, ctx: Ctx, tenant_id: TenantId) -> DeliveryOut:
    """Send a test alert now; the delivery as it ended (`sent`, or `failed` with why)."""
    return DeliveryOut.model_validate(alerts.send_test(ctx.service, tenant_id, channel_id))


@router.get("/events", response_model=EventsOut)
def list_events(
    ctx: Ctx,
    tenant_id: TenantId,
    audience_id: uuid.UUID | None = None,
    state: Literal["open", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EventsOut:
    """Incidents, newest first, each with its deliveries' status."""
    found = alerts.events(ctx.service, tenant_id, audience_id, state, limit)
    return EventsOut.model_validate({"events": found})
