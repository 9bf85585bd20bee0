"""Alembic environment: the URL comes from the Config that ``mammocad.store.session`` builds
(``mammocad db upgrade`` / ``serve`` start), never from an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool, text

from mammocad.store.models import Base
from mammocad.store.session import make_engine

config = context.config
target_metadata = Base.metadata

#: PostgreSQL advisory lock held while migrating ("mammocad" in ASCII): serve, worker and
#: dicom-node each upgrade at start, and started together on a fresh database all created the
#: version table at once — all but one failed on a duplicate key
MIGRATION_LOCK = 0x6D616D6D6F636164


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise ValueError("alembic config has no sqlalchemy.url: use mammocad.store.upgrade")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # batch mode: SQLite can only ALTER tables by copying them
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # held to the end of this transaction: the others wait, then find the schema
                # at head and have nothing to do
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
