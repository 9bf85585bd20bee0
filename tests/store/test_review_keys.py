"""Review: a key name the ``api_keys`` table cannot hold is refused with a sentence (the
column is 128 characters; PostgreSQL would fail the insert, SQLite would keep it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mammocad.store.keys import ApiKeyError, create_api_key
from mammocad.store.session import (
    database_url,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = database_url(data_dir=tmp_path)
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def test_a_key_name_longer_than_its_column_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ApiKeyError, match="at most 128"), transaction(sessions) as session:
        create_api_key(session, name="k" * 129)
    with transaction(sessions) as session:
        assert create_api_key(session, name="k" * 128).startswith("mcad_")
