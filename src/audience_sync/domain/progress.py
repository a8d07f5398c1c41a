"""A sync job's progress as the worker reports it: its phases, in order, and what they count."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where a run is, in the order a run goes through them (a dry run stops after planning,
    then finishes; a delete only finishes)."""

    READING = "reading"  # members read and prepared: done of the segment's members
    PLANNING = "planning"  # the delta against the snapshot (or the member state): no count
    UPLOADING = "uploading"  # adds sent: records (a platform's own replace: members)
    REMOVING = "removing"  # removals sent: records
    FINISHING = "finishing"  # the platform's figures read, the job recorded: no count
    CONFIRMING = "confirming"  # after the run: the platform processes the requests (Google)


class Unit(StrEnum):
    """What a phase's `done` and `total` count."""

    MEMBERS = "members"
    RECORDS = "records"
    REQUESTS = "requests"
