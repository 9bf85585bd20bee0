"""Review: the patient's identity in every DICOM output is the source's, byte for byte.

* A source declaring ``ISO_IR 192`` (UTF-8) whose Patient's Name, Patient ID… hold Latin-1
  bytes (misconfigured modalities): highdicom copies the values pydicom decoded, with
  replacement characters (U+FFFD), and pydicom wrote those in UTF-8, so the SR, SCs and GSPSs
  carried another Patient ID than their images (dcentvfy: "Different PatientID for same
  StudyInstanceUID"): a PACS files them under another patient or rejects them. The outputs now
  declare ``ISO_IR 100``, in which those bytes are written back unchanged (PS3.3 C.12.1.1.2).
  A ``cp1252`` source's non-ASCII values were re-encoded in UTF-8 the same way.
* An SR whose own text (an em dash) needs more than the declared set was switched to UTF-8,
  re-encoding a non-ASCII Patient ID with it; its own text is now spelt within the set.
* The GSPS series of the two breasts shared Series Number 9003: a workstation listed two
  series of one number.

The result object is built by hand from the phantom's headers (one finding per image).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from mammocad.report.dicom import SrTemplate, write_dicom_outputs
from mammocad.report.dicom.sc import SC_SERIES_NUMBER
from mammocad.report.dicom.sr import SR_SERIES_NUMBER

from .conftest import dciodvfy_errors, edited_copies
from .test_review_dicom_standards import _picture, _result, _write

#: the identifying values, non-ASCII in Latin-1 (every character is one byte of it)
IDENTITY = {
    "PatientName": "M\u00fcller^J\u00f6rg",
    "PatientID": "ID-\u00e9\u00e8-42",
    "IssuerOfPatientID": "H\u00f4pital Nord",
    "AccessionNumber": "ACC\u00e91",
    "StudyID": "S\u00e9",
    "StudyDescription": "Mammographie de d\u00e9pistage",
}
#: the Defined Term a source is written in before its declaration is replaced (same length)
_WRITTEN_IN = {"latin-1": "ISO_IR 100", "utf-8": "ISO_IR 192"}
EM_DASH_SENTENCE = "mammocad failed on this image (RuntimeError) \u2014 please report it."


def _sources(phantom: Path, folder: Path, encoding: str, declared: str) -> list[Path]:
    """The phantom with :data:`IDENTITY` in ``encoding``'s bytes, declaring ``declared``."""
    written_in = _WRITTEN_IN[encoding]

    def identity(ds: Dataset) -> None:
        ds.SpecificCharacterSet = written_in
        for keyword, value in IDENTITY.items():
            setattr(ds, keyword, value)

    paths = edited_copies(phantom, folder, identity)
    for path in paths:  # the declaration the modality got wrong, the bytes as they are
        data = path.read_bytes()
        assert data.count(written_in.encode()) == 1
        path.write_bytes(data.replace(written_in.encode(), declared.ljust(10).encode()))
    return paths


def _raw(path: Path) -> dict[str, bytes]:
    """The identifying values of ``path`` as stored, undecoded."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return {keyword: bytes(ds.get_item(keyword).value) for keyword in IDENTITY}


def _dcentvfy_errors(paths: list[Path]) -> list[str]:
    if shutil.which("dcentvfy") is None:
        return []
    run = subprocess.run(
        ["dcentvfy", *map(str, paths)], capture_output=True, timeout=120, check=False
    )
    text = (run.stdout + run.stderr).decode("latin-1")
    return [line for line in text.splitlines() if line.startswith("Error")]


@pytest.mark.parametrize(
    ("declared", "encoding", "declared_out"),
    [
        ("ISO_IR 192", "latin-1", "ISO_IR 100"),  # UTF-8 declared, Latin-1 written
        ("ISO_IR 192", "utf-8", "ISO_IR 192"),  # as declared: unchanged
        ("ISO_IR 100", "latin-1", "ISO_IR 100"),
        ("ISO-8859-1", "latin-1", "ISO_IR 100"),  # no Defined Term: the term of its codec
        ("cp1252", "latin-1", "ISO_IR 100"),  # no term of its codec: UTF-8 re-encoded them
    ],
)
@pytest.mark.parametrize("template", list(SrTemplate))
def test_every_output_carries_the_sources_identity_bytes(
    phantom: Path,
    tmp_path: Path,
    template: SrTemplate,
    declared: str,
    encoding: str,
    declared_out: str,
) -> None:
    paths = _sources(phantom, tmp_path / "in", encoding, declared)
    source = _raw(paths[0])
    assert source["PatientID"] == IDENTITY["PatientID"].encode(encoding)
    outputs = _write(_result(paths), tmp_path / "out", template)
    assert outputs.messages == []
    assert outputs.sr is not None and len(outputs.sc) == 4 and len(outputs.gsps) == 4
    for path in outputs.paths():
        written = pydicom.dcmread(path, stop_before_pixels=True)
        assert written.SpecificCharacterSet == declared_out, written.Modality
        assert _raw(path) == source, written.Modality
        assert dciodvfy_errors(path) == []
    assert _dcentvfy_errors([*paths, *outputs.paths()]) == []


@pytest.mark.parametrize("template", list(SrTemplate))
def test_an_sr_sentence_outside_the_set_leaves_the_identity_bytes(
    phantom: Path, tmp_path: Path, template: SrTemplate
) -> None:
    """An em dash in mammocad's own text switched the SR to UTF-8, which re-encoded the
    patient's Latin-1 name and ID; the sentence is spelt within ISO_IR 100 instead."""
    paths = _sources(phantom, tmp_path / "in", "latin-1", "ISO_IR 192")
    result = _result(paths)
    refused = result["images"][3]
    refused.update(status="rejected", rejection_code="internal_error", findings=[])
    refused["quality"] = {
        "score": 0.0,
        "acceptable": False,
        "issues": [{"code": "internal_error", "severity": "error", "text": EM_DASH_SENTENCE}],
    }
    outputs = write_dicom_outputs(
        result, folder=tmp_path / "out", picture=_picture, gsps=False, sr_template=template
    )
    assert outputs.sr is not None and outputs.messages == []
    sr = pydicom.dcmread(outputs.sr, stop_before_pixels=True)
    assert sr.SpecificCharacterSet == "ISO_IR 100"
    assert _raw(outputs.sr) == _raw(paths[0])
    texts = [str(e.value) for e in sr.iterall() if e.keyword == "TextValue"]
    assert any(EM_DASH_SENTENCE.replace("\u2014", "-") in text for text in texts), texts
    assert dciodvfy_errors(outputs.sr) == []


def test_each_breasts_presentation_states_have_a_series_number_of_their_own(
    phantom: Path, tmp_path: Path
) -> None:
    paths = sorted(phantom.glob("*.dcm"))
    outputs = _write(_result(paths), tmp_path / "out", SrTemplate.TID1500)
    assert outputs.messages == [] and len(outputs.gsps) == 4
    numbers: dict[str, set[int]] = {}  # Series Instance UID → its Series Numbers
    sides: dict[str, set[int]] = {}  # the GSPS series' Laterality → their Series Numbers
    for path in outputs.paths():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        numbers.setdefault(str(ds.SeriesInstanceUID), set()).add(int(ds.SeriesNumber))
        if ds.Modality == "PR":
            sides.setdefault(str(ds.Laterality), set()).add(int(ds.SeriesNumber))
    assert sides == {"L": {9003}, "R": {9004}}
    assert all(len(values) == 1 for values in numbers.values()), numbers
    series_numbers = [next(iter(values)) for values in numbers.values()]
    assert len(series_numbers) == len(set(series_numbers)) == 4  # SR, SC, GSPS L, GSPS R
    assert {SR_SERIES_NUMBER, SC_SERIES_NUMBER} < set(series_numbers)
