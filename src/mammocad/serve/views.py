"""Database rows → response bodies, and the URLs of the API's resources."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from mammocad.serve.schemas import ImageOut, JobOut, StudyDetail, StudySummary
from mammocad.store.models import Image, Job, JobStatus, Study, StudyState, as_utc
from mammocad.store.repository import latest_job

API = "/api/v1"


def study_url(study_instance_uid: str) -> str:
    return f"{API}/studies/{study_instance_uid}"


def job_url(job_id: str) -> str:
    return f"{API}/jobs/{job_id}"


def picture_url(study_instance_uid: str, sop_instance_uid: str, picture: str) -> str:
    return f"{study_url(study_instance_uid)}/images/{sop_instance_uid}/{picture}.png"


def served_result(document: dict[str, Any]) -> dict[str, Any]:
    """The stored result as clients get it: each image's ``source`` is the stored file's name,
    not its path on the server (CWE-497: no system information to clients)."""
    if "images" not in document:
        return document
    images = [
        {**image, "source": PurePath(image["source"]).name} if image.get("source") else image
        for image in document["images"]
    ]
    return {**document, "images": images}


def job_out(job: Job, *, with_result: bool = True) -> JobOut:
    uid = job.study.study_instance_uid
    result = None
    if with_result and job.status == JobStatus.DONE.value and job.study.result is not None:
        result = served_result(job.study.result.document)
    return JobOut(
        id=job.id,
        study_instance_uid=uid,
        status=job.status,
        stage=job.stage,
        stage_timings_ms={k: float(v) for k, v in (job.stage_timings_ms or {}).items()},
        error=job.error,
        worker=job.worker,
        attempts=job.attempts,
        created_at=as_utc(job.created_at),
        started_at=as_utc(job.started_at) if job.started_at else None,
        finished_at=as_utc(job.finished_at) if job.finished_at else None,
        study_url=study_url(uid),
        result=result,
    )


def image_out(study: Study, image: Image) -> ImageOut:
    uid, sop = study.study_instance_uid, image.sop_instance_uid
    return ImageOut(
        sop_instance_uid=sop,
        laterality=image.laterality,
        view=image.view,
        status=image.status,
        rejection_code=image.rejection_code,
        overlay_url=picture_url(uid, sop, "overlay") if image.overlay else None,
        input_url=picture_url(uid, sop, "input") if image.input_picture else None,
    )


def study_summary(study: Study) -> StudySummary:
    job = latest_job(study)
    # the worklist says why a study failed (the study page says it too, from its job)
    error = job.error if job is not None and study.state == StudyState.FAILED.value else None
    return StudySummary(
        study_instance_uid=study.study_instance_uid,
        patient_id=study.patient_id,
        accession_number=study.accession_number,
        study_date=study.study_date,
        study_time=study.study_time,
        created_at=as_utc(study.created_at),
        updated_at=as_utc(study.updated_at),
        status=study.state,
        result_status=study.result_status,
        malignancy_probability=study.malignancy_probability,
        suspicion=study.suspicion,
        image_count=len(study.images),
        url=study_url(study.study_instance_uid),
        error=error,
    )


def study_detail(study: Study) -> StudyDetail:
    job = latest_job(study)
    return StudyDetail(
        **study_summary(study).model_dump(),
        images=[image_out(study, image) for image in study.images],
        job=job_out(job, with_result=False) if job is not None else None,
        result=served_result(study.result.document) if study.result is not None else None,
    )
