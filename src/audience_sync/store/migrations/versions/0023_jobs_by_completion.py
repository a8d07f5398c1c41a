"""An index of each tenant's jobs by the time they ended.

The dashboard's Audiences page counts the tenant's real syncs that ended in the last 30 days
(`services.overview.summary`). On a table without statistics it was planned through
`ix_audience_sync_jobs_status` (every tenant's ended jobs, of every date): 70-77 ms at 200,000
jobs, growing with the history; through the tenant's index it would read every job the tenant
ever ran. With `(tenant_id, completed_at)` it reads the window's jobs alone
(tests/integration/test_job_read_plans.py holds the plan).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_audience_sync_jobs_tenant_completed",
        "audience_sync_jobs",
        ["tenant_id", "completed_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_audience_sync_jobs_tenant_completed", table_name="audience_sync_jobs")
