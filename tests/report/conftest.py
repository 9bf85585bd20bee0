"""A phantom study written as DICOM, and edited copies of it, for the DICOM-output tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.synthetic import write_studies

#: a Japanese patient name in its three component groups (PS3.5 6.2.1.1)
JAPANESE = "Yamada^Tarou=山田^太郎=やまだ^たろう"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (folder,) = write_studies(
        n_studies=1, out_dir=tmp_path_factory.mktemp("studies"), seed=5, size="small"
    )
    return folder


def edited_copies(phantom: Path, folder: Path, edit: Callable[[Dataset], None]) -> list[Path]:
    """Each file of ``phantom`` changed by ``edit`` and saved in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sorted(phantom.glob("*.dcm")):
        ds = pydicom.dcmread(source)
        edit(ds)
        ds.save_as(folder / source.name)
        paths.append(folder / source.name)
    return paths


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dicom3tools' ``dciodvfy`` prints for ``path`` (none when it is not
    installed: CI installs it)."""
    if shutil.which("dciodvfy") is None:
        return []
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def processed_image(path: Path, view: str) -> dict[str, Any]:
    """The result-schema image object of the DICOM file ``path``: processed, acceptable, one
    mass finding ``<SOP UID>-f1``."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    key = str(ds.SOPInstanceUID)
    finding = {
        "id": f"{key}-f1",
        "label": "mass",
        "score": 0.8,
        "malignancy_probability": 0.61,
        "box": [10.5, 20.25, 60.0, 80.75],
    }
    return {
        "sop_instance_uid": key,
        "source": str(path),
        "status": "processed",
        "rejection_code": None,
        "laterality": str(ds.ImageLaterality),
        "view": view,
        "quality": {"score": 1.0, "acceptable": True, "issues": []},
        "pixel_spacing_mm": [0.07, 0.07],
        "findings": [finding],
    }
