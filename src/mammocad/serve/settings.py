"""Service settings: environment variables with the ``MAMMOCAD_`` prefix or a ``.env`` file.

Built once by ``mammocad serve`` (command-line options win) and handed to the app factory;
no module reads them globally.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mammocad.errors import MammocadError
from mammocad.report.dicomweb_push import DicomwebDestination

MiB = 1024 * 1024
#: values of :class:`mammocad.report.dicom.writer.SrTemplate` (not imported: it needs highdicom)
SrTemplateName = Literal["tid1500", "mammography-cad"]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class UnsafeSettingsError(MammocadError):
    """The settings would expose patient data; the message says which setting to change."""


class Settings(BaseSettings):
    """Everything ``mammocad serve`` needs; see docs/api.md for each variable."""

    model_config = SettingsConfigDict(env_prefix="MAMMOCAD_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("mammocad-data"), description="Database, uploads, results")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite <data_dir>/mammocad.db"
    )
    model: Path | None = Field(
        default=None, description="Model bundle folder; default: the shipped bundle"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    environment: Environment = Environment.PRODUCTION
    require_api_key: bool = True
    max_upload_bytes: int = Field(default=1024 * MiB, ge=1, description="Whole request")
    max_file_bytes: int = Field(default=256 * MiB, ge=1, description="One file (zip member)")
    max_files: int = Field(default=64, ge=1, description="Files per upload (zip members)")
    workers: int = Field(default=1, ge=1, description="In-process analysis threads")
    device: str = "cpu"
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (redis://host:6379/N): jobs go to `mammocad worker` processes",
    )
    job_time_limit_s: float = Field(default=900.0, gt=0, description="Per study, Celery only")
    broker_visibility_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Celery: a dead worker's stage goes to another worker after this; "
        "default job_time_limit_s + 60 (must exceed the longest stage)",
    )
    threads: int | None = Field(default=None, ge=1, description="Torch CPU threads")
    dicom_outputs: bool = Field(
        default=True, description="Write each study's SR and Secondary Captures (and GSPS)"
    )
    sr_template: SrTemplateName = Field(
        default="tid1500",
        description="The SR of each study: tid1500 (Comprehensive SR) or mammography-cad",
    )
    dicomweb_push_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="DICOMweb base URL (http://pacs:8042/dicom-web): each study's DICOM outputs "
        "are sent to {url}/studies (STOW-RS) once analysed",
    )
    dicomweb_push_token: SecretStr | None = Field(
        default=None, description="Sent as Authorization: Bearer with each push"
    )
    dicomweb_push_timeout_s: float = Field(default=30.0, gt=0, description="Per push request")

    def push_destination(self) -> DicomwebDestination | None:
        """Where each study's DICOM outputs are pushed, ``None`` when nowhere."""
        if not self.dicomweb_push_url:
            return None
        token = self.dicomweb_push_token
        return DicomwebDestination(
            url=self.dicomweb_push_url,
            token=token.get_secret_value() if token is not None else None,
            timeout_s=self.dicomweb_push_timeout_s,
        )

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.host)

    def check_safe(self) -> None:
        """Refuse settings that would expose data outside development.

        Raises:
            UnsafeSettingsError: API keys are off while the server listens beyond this machine.
        """
        if self.environment == Environment.DEVELOPMENT:
            return
        if not self.require_api_key and not self.loopback_only:
            raise UnsafeSettingsError(
                f"refusing to serve on {self.host} without API keys: anyone who can reach this "
                "address could read and delete studies. Keep MAMMOCAD_REQUIRE_API_KEY=true "
                "(create a key with `mammocad apikey create --name NAME`), or bind to "
                "127.0.0.1, or set MAMMOCAD_ENVIRONMENT=development on a test machine."
            )


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``0.0.0.0`` / ``::`` mean every interface)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False
