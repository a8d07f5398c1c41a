"""The fake platform passes the connector conformance suite against its own emulator."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from audience_sync.testing import ConnectorConformance

from .emulator import create_app


class TestFakeConformance(ConnectorConformance):
    platform = "fake"

    @pytest.fixture
    def sandbox(self) -> FastAPI:
        return create_app()
