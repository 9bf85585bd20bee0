"""Service database: SQLAlchemy models, sessions, Alembic migrations and the queries the API
and the workers make (``repository``). Pixel data stays on disk under the data dir."""
