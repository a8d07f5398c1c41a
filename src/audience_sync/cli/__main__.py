"""`python -m audience_sync.cli`: the same as the `audience-sync` command."""

from audience_sync.cli import app

app()
