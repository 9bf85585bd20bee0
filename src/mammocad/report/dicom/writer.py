"""Write the DICOM outputs of one analysed study into a folder::

    FOLDER/sr.dcm                           Comprehensive SR, TID 1500 (:mod:`.sr`), or with
                                            ``sr_template="mammography-cad"`` the Mammography
                                            CAD SR, TID 4000 (:mod:`.cad_sr`): one SR either way
    FOLDER/sc/<SC SOPInstanceUID>.dcm       one Secondary Capture per processed image (:mod:`.sc`)
    FOLDER/gsps/<GSPS SOPInstanceUID>.dcm   one GSPS per processed image (:mod:`.gspr`)

Everything is built from the result schema object, the source headers (read again, no pixels)
and the overlay pictures. An image without a DICOM header (PNG, PGM…) gets no DICOM object and a
message; one object that cannot be built is logged and reported, the others are still written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from mammocad.errors import RejectionCode
from mammocad.io.display import VoiKind, choose_voi, display_range
from mammocad.report.dicom.cad_sr import build_cad_sr
from mammocad.report.dicom.gspr import build_gsps
from mammocad.report.dicom.headers import read_header, read_stored_pixels
from mammocad.report.dicom.sc import build_sc
from mammocad.report.dicom.sr import build_sr
from mammocad.report.dicom.uids import OutputUids
from mammocad.structures import Message, Severity

logger = logging.getLogger(__name__)

#: ``picture(image key)`` → the overlay (``uint8[H, W, 3]`` BGR) or ``None`` when there is none.
PictureSource = Callable[[str], npt.NDArray[np.uint8] | None]


class SrTemplate(str, Enum):
    """Which SR a study gets (``sr.dcm``): the root template of its content tree (PS3.16)."""

    TID1500 = "tid1500"  # Comprehensive SR, Imaging Measurement Report (OHIF, most viewers)
    MAMMOGRAPHY_CAD = "mammography-cad"  # Mammography CAD SR, TID 4000 (mammography workstations)


@dataclass(slots=True)
class DicomOutputs:
    """What :func:`write_dicom_outputs` wrote (paths) and said (messages)."""

    sr: Path | None = None
    sc: dict[str, Path] = field(default_factory=dict)  # source SOPInstanceUID → file
    gsps: dict[str, Path] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)

    def paths(self) -> list[Path]:
        return [*([self.sr] if self.sr else []), *self.sc.values(), *self.gsps.values()]


def _note(outputs: DicomOutputs, code: str, text: str, key: str | None = None) -> None:
    outputs.messages.append(
        Message(code=code, severity=Severity.WARNING, text=text, sop_instance_uid=key)
    )


def _headers(result: Mapping[str, Any], outputs: DicomOutputs) -> dict[str, Dataset]:
    headers: dict[str, Dataset] = {}
    for image in result["images"]:
        key, source = image["sop_instance_uid"], image.get("source")
        if image["status"] != "processed" or not source:
            continue
        try:
            header = read_header(source)
        except Exception as error:  # moved, deleted, damaged since the analysis
            logger.warning("header of %s could not be read again", source, exc_info=True)
            _note(outputs, "dicom_source_unreadable", f"{source}: {error}; no DICOM output.", key)
            continue
        if header is None:
            _note(
                outputs,
                "no_dicom_header",
                f"{source} is not a DICOM file: it gets no SR evidence, SC or GSPS (its "
                "findings are in result.json and its overlay PNG).",
                key,
            )
        else:
            headers[key] = header
    return headers


#: the rejection of a study's object that is no mammogram (:func:`_refused_headers`)
_OTHER = RejectionCode.NOT_MAMMOGRAPHY.value


def _refused_headers(result: Mapping[str, Any], study: str) -> dict[str, Dataset]:
    """The headers of the study's images that were not processed (quality gate, decoding),
    where they can still be read, for the Mammography CAD SR's failed detections (TID 4015);
    a header that could not be referenced (no UIDs, another study) is left out, and so is an
    object that is no mammogram (``not_mammography``: an SR, a presentation state or a
    secondary capture of the same study, e.g. mammocad's own outputs of an earlier run in a
    PACS export), on which no detection failed and which no IMAGE item may reference."""
    headers: dict[str, Dataset] = {}
    for image in result["images"]:
        source = image.get("source")
        if image["status"] == "processed" or not source or image.get("rejection_code") == _OTHER:
            continue
        try:
            header = read_header(source)
        except Exception:  # the image is still named in the Impression Description
            logger.info("header of refused image %s could not be read", source, exc_info=True)
            continue
        if header is None:
            continue
        keys = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
        if all(header.get(k) for k in keys) and str(header.StudyInstanceUID) == study:
            headers[image["sop_instance_uid"]] = header
    return headers


def _stretch(image: Mapping[str, Any], header: Dataset) -> tuple[float, float] | None:
    """The value range mammocad displayed an image without VOI over (`io.display.display_range`),
    from its pixels decoded again; ``None`` when it has a VOI or cannot be decoded now."""
    if choose_voi(header).kind is not VoiKind.NONE:
        return None
    try:
        stored = read_stored_pixels(str(image["source"]))
        return display_range(stored, header) if stored is not None else None
    except Exception:  # the state is still written, without VOI
        logger.warning("pixels of %s could not be read again", image["source"], exc_info=True)
        return None


def _write(dataset: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


def _per_image(
    result: Mapping[str, Any],
    headers: Mapping[str, Dataset],
    *,
    folder: Path,
    picture: PictureSource,
    uids: OutputUids,
    gsps: bool,
    outputs: DicomOutputs,
) -> None:
    name, version = str(result["model"]["name"]), str(result["model"]["version"])
    number = 0
    for image in result["images"]:
        key = image["sop_instance_uid"]
        header = headers.get(key)
        if header is None:
            continue
        number += 1
        try:
            bgr = picture(key)
            if bgr is not None:
                sc = build_sc(
                    header,
                    bgr,
                    laterality=image["laterality"],
                    uids=uids,
                    instance_number=number,
                    model_name=name,
                    model_version=version,
                )
                outputs.sc[key] = _write(sc, folder / "sc" / f"{sc.SOPInstanceUID}.dcm")
            if gsps:
                pr = build_gsps(
                    header,
                    image["findings"],
                    laterality=image["laterality"],
                    uids=uids,
                    instance_number=number,
                    model_name=name,
                    model_version=version,
                    stretch=_stretch(image, header),
                )
                outputs.gsps[key] = _write(pr, folder / "gsps" / f"{pr.SOPInstanceUID}.dcm")
        except Exception as error:  # one image's object must not cost the others
            logger.exception("DICOM outputs of image %s could not be written", key)
            _note(outputs, "dicom_output_failed", f"{type(error).__name__}: {error}", key)


def write_dicom_outputs(
    result: Mapping[str, Any],
    *,
    folder: Path,
    picture: PictureSource,
    gsps: bool = True,
    sr_template: SrTemplate | str = SrTemplate.TID1500,
) -> DicomOutputs:
    """Write the SR, the SCs and (``gsps``) the presentation states of one study's ``result``.

    ``result`` is the result schema object (``Pipeline.analyze(...).result``); each image's
    ``source`` must still be readable. ``sr_template`` picks the one SR written as ``sr.dcm``:
    the TID 1500 Comprehensive SR or the TID 4000 Mammography CAD SR. UIDs follow
    :mod:`.uids`, so writing the same result again (same study, same model version, same SR
    template) produces the same objects.
    """
    template = SrTemplate(sr_template)
    outputs = DicomOutputs()
    model = result["model"]
    uids = OutputUids(
        study_instance_uid=str(result["study_instance_uid"]),
        model_name=str(model["name"]),
        model_version=str(model["version"]),
    )
    headers = _headers(result, outputs)
    if not headers:
        _note(outputs, "no_dicom_outputs", "No processed DICOM image: no DICOM output written.")
        return outputs
    try:
        sr: Dataset
        if template is SrTemplate.MAMMOGRAPHY_CAD:
            refused = _refused_headers(result, str(result["study_instance_uid"]))
            sr = build_cad_sr(result, headers, uids=uids, refused=refused)
        else:
            sr = build_sr(result, headers, uids=uids)
        outputs.sr = _write(sr, folder / "sr.dcm")
    except Exception as error:
        logger.exception("SR of study %s could not be written", result["study_instance_uid"])
        _note(outputs, "dicom_output_failed", f"SR: {type(error).__name__}: {error}")
    _per_image(
        result, headers, folder=folder, picture=picture, uids=uids, gsps=gsps, outputs=outputs
    )
    return outputs
