"""``mammocad serve``, ``mammocad apikey …`` and ``mammocad db upgrade``."""

from __future__ import annotations

import threading
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from mammocad.logs import configure_logging
from mammocad.serve.settings import Settings
from mammocad.store.keys import create_api_key, revoke_api_key
from mammocad.store.session import (
    database_url,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)


def build_settings(**overrides: Any) -> Settings:
    """Environment / ``.env`` settings with the command-line options that were given."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return Settings(**given)


def shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def upgrade_database(settings: Settings) -> str:
    """Create or upgrade the database of ``settings``; returns its URL (password hidden)."""
    url = database_url(data_dir=settings.data_dir, override=settings.database_url)
    upgrade(url)
    return shown_url(url)


def _with_sessions(settings: Settings) -> tuple[Any, Any]:
    url = database_url(data_dir=settings.data_dir, override=settings.database_url)
    upgrade(url)  # a key can be made before the first `serve`
    engine = make_engine(url)
    return engine, session_factory(engine)


def new_api_key(settings: Settings, *, name: str) -> str:
    """Store a new key named ``name``; returns the key (its only appearance in clear)."""
    engine, sessions = _with_sessions(settings)
    try:
        with transaction(sessions) as session:
            return create_api_key(session, name=name)
    finally:
        engine.dispose()


def revoke_key(settings: Settings, *, name: str) -> bool:
    engine, sessions = _with_sessions(settings)
    try:
        with transaction(sessions) as session:
            return revoke_api_key(session, name=name)
    finally:
        engine.dispose()


def run_server(
    settings: Settings,
    *,
    model: Path | None = None,
    preload: Sequence[Path] = (),
    open_browser: bool = False,
) -> None:
    """Serve the API (and UI) with uvicorn until interrupted; queue the studies under
    ``preload`` at start-up and, with ``open_browser``, open the web UI once it listens.

    Raises:
        UnsafeSettingsError: see :meth:`Settings.check_safe`.
    """
    import uvicorn

    from mammocad.commands.analyze import resolve_model
    from mammocad.serve.app import create_app

    if model is not None:
        settings = settings.model_copy(update={"model": model})
    settings.check_safe()
    # fail here with the sentence, rather than inside uvicorn's start-up with a traceback
    resolve_model(settings.model)
    upgrade_database(settings)
    configure_logging()
    app = create_app(settings, preload=preload)
    url = f"http://{_browser_host(settings.host)}:{settings.port}/"
    print(f"web UI and API: {url}  (API docs: {url}docs)", flush=True)
    if open_browser:
        # after uvicorn has bound the port; webbrowser does nothing useful without a display
        threading.Timer(2.0, webbrowser.open, args=(url,)).start()
    # one process: the model and the in-process workers live in it (scale out with more
    # processes over PostgreSQL, not uvicorn workers sharing nothing)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


def _browser_host(host: str) -> str:
    """Where a browser on this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
