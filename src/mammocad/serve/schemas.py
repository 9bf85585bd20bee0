"""Request and response bodies of the REST API (the OpenAPI document is built from these).

A study's analysis result itself is the result schema object (``schemas/result.schema.json``),
passed through as JSON rather than remodelled here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mammocad.structures import FindingLabel

#: what the service accepts as a UID: a database column of 64 characters (PS3.5 §9.1 caps UIDs
#: at 64) and one path segment of ``/api/v1/studies/{uid}``
UID_PATTERN = r"^[0-9A-Za-z._-]{1,64}$"
Uid = Annotated[str, Field(min_length=1, max_length=64, pattern=UID_PATTERN)]
JobId = Annotated[str, Field(min_length=1, max_length=36, pattern=r"^[0-9A-Za-z-]+$")]


def _no_nul(text: str) -> str:
    # JSON allows "\u0000"; PostgreSQL text columns do not
    if "\x00" in text:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return text


Text = Annotated[str, AfterValidator(_no_nul)]
#: a pixel coordinate: JSON's 1e999 reads as infinity, which no column (nor image) holds
Coordinate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: ``detail`` says what went wrong and what to do."""

    detail: str
    code: str | None = Field(default=None, description="Machine-readable reason, when one")


class IgnoredFile(BaseModel):
    name: str
    reason: str


class UploadAccepted(BaseModel):
    """202: a job was queued, or the new images join the study's job still queued; 200:
    nothing new, the study's latest job is returned."""

    job_id: str
    study_instance_uid: str
    status: str = Field(description="The job's status: queued, running, done or failed")
    location: str = Field(description="Poll this URL (GET) until status is done or failed")
    new_instances: int = Field(description="Images added by this upload")
    known_instances: int = Field(description="Images the study already had (not duplicated)")
    ignored: list[IgnoredFile] = Field(description="Files of the upload that are not usable")


class JobOut(BaseModel):
    id: str
    study_instance_uid: str
    status: str = Field(description="queued, running, done or failed")
    stage: str | None = Field(description="The stage running now (decode, analyze, report)")
    stage_timings_ms: dict[str, float]
    error: str | None
    worker: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    study_url: str
    result: dict[str, Any] | None = Field(
        default=None, description="The study result (result schema) once status is done"
    )


class ImageOut(BaseModel):
    sop_instance_uid: str
    laterality: str | None
    view: str | None
    status: str | None = Field(description="processed or rejected; null before analysis")
    rejection_code: str | None
    overlay_url: str | None
    input_url: str | None


class StudySummary(BaseModel):
    """One worklist row."""

    study_instance_uid: str
    patient_id: str | None
    accession_number: str | None
    study_date: str | None = Field(description="DICOM StudyDate, YYYYMMDD")
    study_time: str | None
    created_at: datetime = Field(description="When the study was first uploaded (UTC)")
    updated_at: datetime
    status: str = Field(description="queued, processing, done or failed")
    result_status: str | None = Field(description="complete, partial or rejected, once done")
    malignancy_probability: float | None
    suspicion: str | None = Field(description="low, intermediate or high")
    image_count: int
    url: str
    error: str | None = Field(
        default=None, description="Why the analysis failed (status failed), and what to do"
    )


class StudyList(BaseModel):
    items: list[StudySummary]
    total: int
    limit: int
    offset: int


class StudyDetail(StudySummary):
    images: list[ImageOut]
    job: JobOut | None
    result: dict[str, Any] | None = Field(description="The result schema object, once done")


class StudyLabel(StrEnum):
    NORMAL = "normal"
    BENIGN = "benign"
    MALIGNANT = "malignant"


class StudyFeedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agree: bool = Field(description="Does the reader agree with the study's reading?")
    corrected_label: StudyLabel | None = None
    comment: Text | None = Field(default=None, max_length=2000)


class FindingFeedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    finding_id: Text = Field(min_length=1, max_length=128, description="A finding id of the result")
    agree: bool = Field(description="false: not a lesion, or wrong label/box (see corrections)")
    corrected_label: FindingLabel | None = None
    corrected_box: list[Coordinate] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="[x1, y1, x2, y2] in ORIGINAL pixels of the finding's image, "
        "0 <= x1 < x2 <= columns, 0 <= y1 < y2 <= rows",
    )
    comment: Text | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _box_order(self) -> FindingFeedback:
        box = self.corrected_box
        if box is not None and not (box[0] < box[2] and box[1] < box[3]):
            raise ValueError("corrected_box must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2")
        return self


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reader_id: Text = Field(min_length=1, max_length=128, description="Who reads (not the key)")
    study: StudyFeedback | None = None
    findings: list[FindingFeedback] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _something(self) -> FeedbackIn:
        if self.study is None and not self.findings:
            raise ValueError("give feedback on the study, on findings, or both")
        return self


class FeedbackOut(BaseModel):
    study_instance_uid: str
    recorded: int


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class ModelsOut(BaseModel):
    loaded: dict[str, Any] = Field(description="The manifest of the bundle in use")
    known: list[dict[str, Any]] = Field(description="Every bundle this database has seen")
