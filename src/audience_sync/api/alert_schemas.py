"""Request and response bodies of the alert routes: `/api/v1/alerts/rules`,
`/api/v1/alerts/channels`, `/api/v1/alerts/events` (docs/alerts.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from audience_sync.api.schemas import SecretText, Strict, Text

RuleName = Literal[
    "sync_failed",
    "connection",
    "members_dropped",
    "platform_size_drop",
    "match_rate_drop",
    "stale_audience",
    "guard_rail",
]
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s,<>]+@[^@\s,<>]+$")]


class RuleOut(BaseModel):
    rule: RuleName
    enabled: bool
    threshold: float | None = Field(description="The tenant's threshold, or the default.")
    default_threshold: float | None
    unit: str | None = Field(description="`percent`, `points`, `days`, `intervals` or none.")


class RulesOut(BaseModel):
    rules: list[RuleOut]


class RuleIn(Strict):
    enabled: bool | None = None
    threshold: float | None = Field(None, gt=0, le=10_000)


class RulesIn(Strict):
    rules: dict[RuleName, RuleIn] = Field(description="The rules to change, by name.")


class WebhookChannelIn(Strict):
    kind: Literal["webhook"]
    url: Text = Field(max_length=2000)
    secret: SecretText | None = Field(
        None,
        min_length=16,
        max_length=200,
        description="Signs each delivery (HMAC-SHA256); required unless the URL is a Slack "
        "incoming webhook.",
    )
    name: Text = Field("", max_length=200)


class EmailChannelIn(Strict):
    kind: Literal["email"]
    to: list[Email] = Field(min_length=1, max_length=20)
    name: Text = Field("", max_length=200)


ChannelIn = Annotated[WebhookChannelIn | EmailChannelIn, Field(discriminator="kind")]


class ChannelOut(BaseModel):
    id: int
    kind: Literal["webhook", "email"]
    name: str
    enabled: bool
    url: str | None = Field(
        None, description="Scheme and host only: a webhook's path may be secret."
    )
    secret: str | None = Field(None, description="A masked hint of the secret; never the secret.")
    slack: bool | None = None
    to: list[str] | None = None
    created_at: datetime


class ChannelsOut(BaseModel):
    channels: list[ChannelOut]


class DeliveryOut(BaseModel):
    id: str
    channel_id: int
    event: Literal["raised", "resolved", "test"]
    status: Literal["pending", "sent", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None


class EventOut(BaseModel):
    id: str
    rule: RuleName
    state: Literal["open", "resolved"]
    title: str
    audience_id: str | None
    facts: dict[str, Any]
    opened_at: datetime
    resolved_at: datetime | None
    deliveries: list[DeliveryOut]


class EventsOut(BaseModel):
    events: list[EventOut]
