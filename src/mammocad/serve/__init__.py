"""REST API (FastAPI) over the analysis pipeline: ``create_app(Settings(...))``; run it with
``mammocad serve``. See docs/api.md."""

from mammocad.serve.app import create_app
from mammocad.serve.settings import Environment, Settings, UnsafeSettingsError

__all__ = ["Environment", "Settings", "UnsafeSettingsError", "create_app"]
