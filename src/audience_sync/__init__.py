"""Audience Sync: push CDP segments to ad platforms as custom audiences."""

from __future__ import annotations

__version__ = "0.1.0"
