"""Tables of the service database (SQLAlchemy 2 typed ORM).

Only identifiers, states and the result JSON live here; pixel data, uploads and pictures stay
on disk under the data dir (``Study.folder`` is relative to it). Changing a table means a new
Alembic revision in ``store/migrations/versions`` (tests compare the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # timezone-aware columns: PostgreSQL keeps UTC; SQLite hands back naive UTC (see as_utc)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


def as_utc(moment: datetime) -> datetime:
    """``moment`` with its UTC zone (SQLite returns stored datetimes without one)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class StudyState(StrEnum):
    """Where a study is in the service (not the result's complete/partial/rejected)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(8))  # DICOM DA, YYYYMMDD
    study_time: Mapped[str | None] = mapped_column(String(16))  # DICOM TM
    folder: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=StudyState.QUEUED.value, index=True)
    result_status: Mapped[str | None] = mapped_column(String(16))
    malignancy_probability: Mapped[float | None]
    suspicion: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    images: Mapped[list[Image]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Image.id"
    )
    jobs: Mapped[list[Job]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="Job.created_at"
    )
    result: Mapped[Result | None] = relationship(
        back_populates="study", cascade="all, delete-orphan"
    )
    findings: Mapped[list[Finding]] = relationship(cascade="all, delete-orphan")
    feedback: Mapped[list[Feedback]] = relationship(cascade="all, delete-orphan")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("study_id", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(255))  # under <study folder>/input/
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # files may pass 2 GiB
    laterality: Mapped[str | None] = mapped_column(String(1))
    view: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str | None] = mapped_column(String(16))  # processed / rejected, once analysed
    rejection_code: Mapped[str | None] = mapped_column(String(64))
    overlay: Mapped[str | None] = mapped_column(String(255))  # relative to the data dir
    input_picture: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship(back_populates="images")


class Job(Base):
    """One analysis of one study; the queue of the in-process workers (``status`` queued)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    stage: Mapped[str | None] = mapped_column(String(32))
    stage_timings_ms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # when the job was sent to the Celery broker; null: not yet (in-process workers: never)
    dispatched_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # in-process workers: refreshed while the job runs, on the database's clock (hosts' clocks
    # may differ); null for Celery workers, whose dead workers the broker handles
    heartbeat_at: Mapped[datetime | None]

    study: Mapped[Study] = relationship(back_populates="jobs")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    manifest: Mapped[dict[str, Any]]
    first_loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Result(Base):
    """The result schema object of a study's latest analysis."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), unique=True)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    document: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship(back_populates="result")


class Finding(Base):
    """One finding of the latest result, flattened for queries and feedback."""

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("study_id", "finding_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    finding_id: Mapped[str] = mapped_column(String(128))  # the result's finding "id"
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    laterality: Mapped[str | None] = mapped_column(String(1))
    label: Mapped[str] = mapped_column(String(32))
    score: Mapped[float]
    malignancy_probability: Mapped[float]
    box: Mapped[list[Any]]  # [x1, y1, x2, y2] in ORIGINAL pixels


class Feedback(Base):
    """A reader's verdict on the study (``finding_id`` null) or on one finding."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    finding_id: Mapped[str | None] = mapped_column(String(128))
    agree: Mapped[bool]
    corrected_label: Mapped[str | None] = mapped_column(String(32))
    corrected_box: Mapped[list[Any] | None] = mapped_column(JSON)
    reader_id: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    api_key_name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key, stored as the SHA-256 of the key (keys are 256-bit random: no salt needed)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings, identifies a key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who created, read, changed or deleted which study; kept after the study is deleted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    study_instance_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
