"""The application services: what the API, the CLI, the scheduler and the Celery tasks call.

Each module holds one area's rules (schedule, feature flags, validation, guard rails), written
once: `audiences`, `segments`, `connections`, `exports`, `jobs`, `tenants`, with `flags` (a
tenant's feature flags as a request meets them) and `ids` (ids given by a unique prefix);
`launcher` starts jobs (in this process or on Celery workers) under one concurrency limit;
`database` opens and migrates the database. The callers above parse input and shape output;
they do not reach into `store` themselves. Functions take the sync engine's `SyncService`
(database, settings, cipher, clock) and a tenant id.
"""

from audience_sync.services import alerts as alerts  # registers the job-end hook (sync.hooks)
