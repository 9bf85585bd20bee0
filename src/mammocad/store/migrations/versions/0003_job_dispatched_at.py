"""jobs.dispatched_at: when a job was sent to the Celery broker. A job committed as queued
whose process died before sending it had no message and stayed queued for good; the service
sends every queued job never sent (``CeleryQueue``).

Queued jobs from before this revision count as sent when they were created: their messages
may be waiting in the broker, and sending them again would give them two. Only queued jobs are
ever sent: the others keep no date, so that 0004 can tell the running ones apart (in-process
workers never set it) and give them a heartbeat.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE jobs SET dispatched_at = created_at WHERE status = 'queued'")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("dispatched_at")
