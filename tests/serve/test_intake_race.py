"""Two processes (the DICOM node and the server, or two servers) receiving the same new study
at once: the one that commits second meets the unique StudyInstanceUID and records its files
again into the study the other created, instead of answering 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy import select

from mammocad.jobs.stages import INPUT_FOLDER, study_folder
from mammocad.store import repository
from mammocad.store.models import Study
from mammocad.store.session import transaction

from .conftest import dicoms


def test_a_study_created_meanwhile_by_another_process_is_recorded_into(
    idle_api: Any,
    phantom_study: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = dicoms(phantom_study)
    uid = str(pydicom.dcmread(paths[0]).StudyInstanceUID)
    sessions = idle_api.client.app.state.mammocad.sessions
    real_get_study = repository.get_study
    calls: list[str] = []

    def other_process_meanwhile(session: Any, study_instance_uid: str) -> Any:
        study = real_get_study(session, study_instance_uid)
        calls.append(study_instance_uid)
        if len(calls) == 1:  # after our read, before our insert, the other process commits
            with transaction(sessions) as other:
                other.add(Study(study_instance_uid=study_instance_uid, folder=study_folder(uid)))
        return study

    # the lookup of add_study_files, the last before the study row is inserted
    monkeypatch.setattr(repository, "get_study", other_process_meanwhile)
    answer = idle_api.upload(paths)
    assert answer.status_code == 202, answer.text
    assert answer.json()["new_instances"] == 4
    assert len(calls) == 2

    with transaction(sessions) as session:
        (study,) = session.scalars(select(Study)).all()
        assert sorted(image.sop_instance_uid for image in study.images) == sorted(
            str(pydicom.dcmread(p).SOPInstanceUID) for p in paths
        )
        assert len(study.jobs) == 1
        folder = idle_api.settings.data_dir / study.folder / INPUT_FOLDER
        assert all((folder / image.file_name).is_file() for image in study.images)
