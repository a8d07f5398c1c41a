"""Segment exports as CSV or JSON, written in bounded memory, downloaded through signed links."""
