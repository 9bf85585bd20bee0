"""Settings (environment, unsafe combinations) and the commands serve, apikey, db upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect
from typer.testing import CliRunner

from mammocad.cli import app as cli
from mammocad.pipeline import Pipeline
from mammocad.serve import Settings, UnsafeSettingsError, create_app
from mammocad.serve.settings import is_loopback
from mammocad.store.session import make_engine


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAMMOCAD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MAMMOCAD_REQUIRE_API_KEY", "false")
    monkeypatch.setenv("MAMMOCAD_MAX_FILES", "7")
    monkeypatch.setenv("MAMMOCAD_ENVIRONMENT", "development")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.data_dir == tmp_path and settings.max_files == 7
    assert settings.require_api_key is False and settings.environment == "development"


def test_dotenv_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAMMOCAD_PORT=9123\nMAMMOCAD_WORKERS=2\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.port == 9123 and settings.workers == 2


def test_defaults_are_safe() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.require_api_key and settings.environment == "production"
    assert settings.host == "127.0.0.1"
    settings.check_safe()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "pacs.example.org"])
def test_keys_off_beyond_loopback_refused_outside_development(host: str) -> None:
    settings = Settings(_env_file=None, host=host, require_api_key=False)  # type: ignore[call-arg]
    with pytest.raises(UnsafeSettingsError, match="MAMMOCAD_REQUIRE_API_KEY"):
        settings.check_safe()
    with pytest.raises(UnsafeSettingsError):
        create_app(settings)
    development = settings.model_copy(update={"environment": "development"})
    development.check_safe()
    Settings(_env_file=None, host=host).check_safe()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("0.0.0.0", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    keys_off = Settings(_env_file=None, host=host, require_api_key=False)  # type: ignore[call-arg]
    if loopback:
        keys_off.check_safe()  # only this machine can reach it
    else:
        with pytest.raises(UnsafeSettingsError):
            keys_off.check_safe()


def test_serve_refuses_unsafe_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAMMOCAD_REQUIRE_API_KEY", "false")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.output


def test_serve_without_a_model_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["serve", "--data-dir", str(tmp_path), "--model", str(tmp_path / "nothing")]
    )
    assert result.exit_code == 2 and "mammocad train detector" in result.output


def test_db_upgrade_and_apikey_create(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pipeline: Pipeline
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    runner = CliRunner()
    upgraded = runner.invoke(cli, ["db", "upgrade", "--data-dir", str(data)])
    assert upgraded.exit_code == 0, upgraded.output
    engine = make_engine(f"sqlite:///{data / 'mammocad.db'}")
    assert "studies" in inspect(engine).get_table_names()
    engine.dispose()

    created = runner.invoke(cli, ["apikey", "create", "--name", "ward-3", "--data-dir", str(data)])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("mcad_") and len(key) > 40
    taken = runner.invoke(cli, ["apikey", "create", "--name", "ward-3", "--data-dir", str(data)])
    assert taken.exit_code == 2 and "exists already" in taken.output

    settings = Settings(_env_file=None, data_dir=data)  # type: ignore[call-arg]
    with TestClient(create_app(settings, pipeline=pipeline, start_workers=False)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/api/v1/studies", headers=headers).status_code == 200
        revoked = runner.invoke(
            cli, ["apikey", "revoke", "--name", "ward-3", "--data-dir", str(data)]
        )
        assert revoked.exit_code == 0
        assert client.get("/api/v1/studies", headers=headers).status_code == 403
