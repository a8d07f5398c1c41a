"""The platform registry: every built-in is one consistent entry, and an unknown platform is a
clear error everywhere a platform is looked up, never another platform's behaviour."""

from __future__ import annotations

import dataclasses

import pytest

from audience_sync.connectors import (
    BUILT_IN,
    GoogleAdsAudienceConnector,
    GoogleAudienceConnector,
    connector_class,
    platform_names,
    platform_spec,
    register_platform,
)
from audience_sync.connectors.registry import sync_flags
from audience_sync.domain.models import SyncPlatform
from audience_sync.domain.platforms import platform_key
from audience_sync.exceptions import UnknownPlatformError, ValidationError
from audience_sync.identifiers import rules_for
from audience_sync.sync.messages import describe
from audience_sync.testing import expected_identifiers, make_users


def test_the_built_ins_are_the_sync_platforms_each_one_consistent_entry() -> None:
    assert platform_names()[:4] == tuple(p.value for p in SyncPlatform)
    for spec in BUILT_IN:
        assert spec.key in SyncPlatform
        assert spec.name == spec.connector.PLATFORM_NAME
        assert spec.shape.platform == spec.name
        assert spec.rules is rules_for(spec.name)
        assert spec.flag is not None
        assert spec.flag.value == f"audience_sync_{spec.name}"
        assert sync_flags(spec.name)[1] is spec.flag


@pytest.mark.parametrize(
    "look_up",
    [
        platform_spec,
        connector_class,
        platform_key,
        sync_flags,
        lambda name: describe(ValidationError("refused"), name),
    ],
    ids=["spec", "connector", "key", "flags", "message"],
)
def test_an_unknown_platform_is_an_unknown_platform_error(look_up: object) -> None:
    with pytest.raises(UnknownPlatformError, match="linkedin"):
        look_up("linkedin")  # type: ignore[operator]


def test_the_suite_has_no_default_family() -> None:
    # It fell back to TikTok's and Snapchat's keys for any family it did not know.
    with pytest.raises(LookupError, match="linkedin"):
        expected_identifiers("linkedin", make_users(0, 2))


def test_a_name_is_registered_once() -> None:
    impostor = dataclasses.replace(platform_spec("meta"), display_name="Other")
    with pytest.raises(Exception, match="already registered"):
        register_platform(impostor)
    assert platform_spec("meta").display_name == "Meta"


def test_an_audience_option_chooses_a_variant() -> None:
    assert connector_class("google") is GoogleAudienceConnector
    assert connector_class("google", {"google_api": "ads"}) is GoogleAdsAudienceConnector
    assert connector_class("google", {"google_api": "other"}) is GoogleAudienceConnector
