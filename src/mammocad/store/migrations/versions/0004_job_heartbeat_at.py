"""jobs.heartbeat_at: when the in-process worker running a job last said it was alive. A job
left running by a process of another host (a Docker container recreated: a new hostname) could
not be checked and stayed running for good; a stale heartbeat now frees it from any host.

Jobs running at the upgrade that in-process workers took (never sent to a broker) count as
having beaten when they started: the one a container left before it was recreated with this
version is freed too. A job running since before 0003 cannot be told apart and gets one as
well: only in-process workers read it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE jobs SET heartbeat_at = started_at "
        "WHERE status = 'running' AND dispatched_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
