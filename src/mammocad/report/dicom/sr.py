"""The study's Comprehensive SR: an Imaging Measurement Report (DICOM PS3.16 TID 1500).

Content, built with highdicom from the result schema object (so the SR says exactly what
``result.json`` says: boxes in ORIGINAL pixels, probabilities rounded to 2 decimals):

* one Planar ROI group (TID 1410) per finding: tracking id = the finding id, finding type
  (:mod:`.codes`), finding site "Breast" with the image's laterality, the box as an image
  region (closed POLYLINE, 5 points) on the source image, and "Probability of cancer" (UCUM 1);
* one group (TID 1501) per breast and one for the study with the probability of cancer; the
  study group references every processed source image, says the study's status and suspicion
  and lists each image that was not processed, all as TEXT qualitative evaluations (TID 1501
  allows TEXT there; highdicom's QualitativeEvaluation takes only codes, so the items are
  appended to the group's content);
* each finding linked to the same lesion in the other view (``linked_finding_ids``) names the
  linked finding's tracking identifier in a TEXT "Comment" of its group;
* the model as device observer and, in every group, as algorithm name and version.

Text that the source's character set cannot hold (an em dash in an error sentence, with no
Specific Character Set: the default repertoire) switches the SR to UTF-8 when the values copied
from the source are ASCII, else is spelt within the declared set (:func:`declare_character_set`),
rather than being written as "?".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
    ComprehensiveSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    GraphicTypeValues,
    ImageRegion,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    RelationshipTypeValues,
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    TextContentItem,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from mammocad.report.dicom import codes as mc
from mammocad.report.dicom.charset import declare_character_set
from mammocad.report.dicom.headers import completed_copy
from mammocad.report.dicom.uids import OutputUids
from mammocad.structures import Laterality

#: the Manufacturer of every object mammocad writes (SR, SC, GSPS); the DICOM node and STOW-RS
#: know their own results by it
MANUFACTURER = "mammocad"
SR_SERIES_NUMBER = 9001
#: What each study status of result.json means (the result schema's description of "status").
STUDY_STATUS_MEANINGS = {
    "complete": "both views (CC and MLO) of both breasts processed",
    "partial": "at least one image processed, but a standard view is missing or was rejected",
    "rejected": "nothing could be processed",
}


def box_polyline(box: Sequence[float]) -> np.ndarray:
    """``[x1, y1, x2, y2]`` → the closed rectangle ``float[5, 2]`` (column, row).

    DICOM 2D image coordinates (PS3.3 C.18.6.1.1) put 0.0\\0.0 at the top-left corner of the
    top-left pixel, which is mammocad's ORIGINAL frame: the box goes in unchanged.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float64)


def _probability(value: float) -> Measurement:
    return Measurement(name=mc.PROBABILITY_OF_CANCER, value=float(value), unit=mc.NO_UNITS)


def _site(laterality: str | None) -> list[FindingSite]:
    side = mc.LATERALITY[Laterality(laterality)] if laterality else None
    return [FindingSite(anatomic_location=mc.BREAST, laterality=side)]


def _finding_group(
    finding: Mapping[str, Any],
    image: Mapping[str, Any],
    header: Dataset,
    *,
    uids: OutputUids,
    algorithm: AlgorithmIdentification,
) -> PlanarROIMeasurementsAndQualitativeEvaluations:
    region = ImageRegion(
        graphic_type=GraphicTypeValues.POLYLINE,
        graphic_data=box_polyline(finding["box"]),
        source_image=SourceImageForRegion.from_source_image(header),
    )
    return PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=uids.derive("finding", finding["id"]), identifier=finding["id"]
        ),
        referenced_region=region,
        finding_type=mc.finding_type(finding["label"]),
        algorithm_id=algorithm,
        finding_sites=_site(image["laterality"]),
        measurements=[_probability(finding["malignancy_probability"])],
    )


def where_of(image: Mapping[str, Any]) -> str:
    """``L CC``: the laterality and view of ``image`` that result.json knows."""
    return " ".join(v for v in (image.get("laterality"), image.get("view")) if v)


def _not_processed_text(image: Mapping[str, Any], reason: str) -> TextContentItem:
    where = where_of(image)
    label = f"{image['sop_instance_uid']} ({where})" if where else image["sop_instance_uid"]
    return TextContentItem(
        name=mc.FINDING,
        value=f"Image not processed: {label}: {reason}"[:1024],
        relationship_type=RelationshipTypeValues.CONTAINS,
    )


def _link_texts(
    finding: Mapping[str, Any], images_by_finding: Mapping[str, Mapping[str, Any]]
) -> list[TextContentItem]:
    """One "Comment" per finding ``finding`` is linked to (``linked_finding_ids``: the same
    lesion matched in the other view of the breast). The linked id is the tracking identifier
    of that finding's group, so a reader can follow it; TID 1500 has no relationship between
    measurement groups."""
    texts: list[TextContentItem] = []
    for linked in finding.get("linked_finding_ids") or []:
        place = where_of(images_by_finding.get(linked) or {})
        where = f" ({place})" if place else ""
        texts.append(
            TextContentItem(
                name=mc.COMMENT,
                value=f"Same lesion as {linked}{where} in the other view"[:1024],
                relationship_type=RelationshipTypeValues.CONTAINS,
            )
        )
    return texts


def study_status_text(result: Mapping[str, Any]) -> str | None:
    """``Study status: partial (<what partial means>)``; ``None`` without a status."""
    status = result.get("status")
    if not status:
        return None
    meaning = STUDY_STATUS_MEANINGS.get(status)
    return f"Study status: {status}" + (f" ({meaning})" if meaning else "")


def _study_texts(result: Mapping[str, Any]) -> list[TextContentItem]:
    """The study's status and suspicion (result.json ``status`` / ``suspicion``) as TEXT."""
    texts: list[TextContentItem] = []
    status = study_status_text(result)
    if status:
        texts.append(
            TextContentItem(
                name=mc.PROCEDURE_DESCRIPTION,
                value=status,
                relationship_type=RelationshipTypeValues.CONTAINS,
            )
        )
    suspicion = result.get("suspicion")
    if suspicion:  # null when the study has no probability
        texts.append(
            TextContentItem(
                name=mc.IMPRESSION,
                value=f"Suspicion: {suspicion} (the model's operating-point category of the "
                "study's probability of cancer)",
                relationship_type=RelationshipTypeValues.CONTAINS,
            )
        )
    return texts


def _summary_group(
    *,
    tracking: str,
    probability: float | None,
    laterality: str | None,
    uids: OutputUids,
    algorithm: AlgorithmIdentification,
    sources: Sequence[Dataset] = (),
) -> MeasurementsAndQualitativeEvaluations:
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=uids.derive("group", tracking), identifier=tracking
        ),
        algorithm_id=algorithm,
        finding_sites=_site(laterality) if laterality else None,
        measurements=[_probability(probability)] if probability is not None else None,
        source_images=[SourceImageForMeasurementGroup.from_source_image(ds) for ds in sources]
        or None,
    )


def unsized_rejections(result: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str]]:
    """Files of the study rejected before their size was known: result.json cannot list them
    as images (rows and columns ≥ 1), so each rejection is a study message (error) naming the
    file's SOP Instance UID (``report.study_json``). Each as ``({"sop_instance_uid": …},
    "<code>: <sentence>")``, once per file."""
    listed = {image["sop_instance_uid"] for image in result["images"]}
    found: dict[str, tuple[Mapping[str, Any], str]] = {}
    for message in result.get("messages") or []:
        uid = message.get("sop_instance_uid")
        if message.get("severity") != "error" or not uid or uid in listed or uid in found:
            continue
        found[uid] = ({"sop_instance_uid": uid}, f"{message['code']}: {message['text']}")
    return list(found.values())


def not_processed_reasons(
    result: Mapping[str, Any], headers: Mapping[str, Dataset]
) -> list[tuple[Mapping[str, Any], str]]:
    """Images of ``result`` the SR cannot show findings for, each with the reason: the images
    rejected or without a DICOM header, then the files rejected before their size was known
    (:func:`unsized_rejections`)."""
    reasons = []
    for image in result["images"]:
        if image["status"] != "processed":
            issues = image["quality"]["issues"]
            text = issues[0]["text"] if issues else "rejected"
            reasons.append((image, f"{image.get('rejection_code') or 'rejected'}: {text}"))
        elif image["sop_instance_uid"] not in headers:
            reasons.append((image, "no DICOM header (raster input): findings only in result.json"))
    return reasons + unsized_rejections(result)


def _observation_context(model: Mapping[str, Any], uids: OutputUids) -> ObservationContext:
    device = DeviceObserverIdentifyingAttributes(
        uid=uids.derive("device"),
        name=str(model["name"]),
        manufacturer_name=MANUFACTURER,
        model_name=f"{model['name']} {model['version']}"[:64],
    )
    return ObservationContext(
        observer_device_context=ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _groups(
    result: Mapping[str, Any],
    headers: Mapping[str, Dataset],
    uids: OutputUids,
    algorithm: AlgorithmIdentification,
) -> list[Any]:
    groups: list[Any] = []
    images_by_finding = {f["id"]: i for i in result["images"] for f in i["findings"]}
    for image in result["images"]:
        header = headers.get(image["sop_instance_uid"])
        if image["status"] != "processed" or header is None:
            continue
        for finding in image["findings"]:
            group = _finding_group(finding, image, header, uids=uids, algorithm=algorithm)
            group[0].ContentSequence.extend(_link_texts(finding, images_by_finding))
            groups.append(group)
    for breast in result["breasts"]:
        side = breast["laterality"]
        groups.append(
            _summary_group(
                tracking=f"breast-{side}",
                probability=breast["malignancy_probability"],
                laterality=side,
                uids=uids,
                algorithm=algorithm,
            )
        )
    study = _summary_group(
        tracking="study",
        probability=result["malignancy_probability"],
        laterality=None,
        uids=uids,
        algorithm=algorithm,
        sources=[headers[key] for key in headers],
    )
    study[0].ContentSequence.extend(_study_texts(result))
    for image, reason in not_processed_reasons(result, headers):
        study[0].ContentSequence.append(_not_processed_text(image, reason))
    groups.append(study)
    return groups


def build_sr(
    result: Mapping[str, Any], headers: Mapping[str, Dataset], *, uids: OutputUids
) -> ComprehensiveSR:
    """The TID 1500 report of ``result`` (the result schema object of one study).

    ``headers`` are the source images' headers (no pixel data) keyed by SOPInstanceUID; only
    images with a header get finding groups, and at least one header is needed.
    """
    if not headers:
        raise ValueError("an SR needs at least one DICOM source image header as evidence")
    model = result["model"]
    algorithm = AlgorithmIdentification(name=str(model["name"]), version=str(model["version"]))
    report = MeasurementReport(
        observation_context=_observation_context(model, uids),
        procedure_reported=mc.MAMMOGRAPHY,
        imaging_measurements=_groups(result, headers, uids, algorithm),
    )
    sr = ComprehensiveSR(
        content=report,
        sop_instance_uid=uids.instance("sr"),
        **sr_document_attributes(model, headers, uids),
    )
    declare_character_set(sr)
    return sr


def sr_document_attributes(
    model: Mapping[str, Any], headers: Mapping[str, Dataset], uids: OutputUids
) -> dict[str, Any]:
    """Keyword arguments every SR document of a study shares (highdicom SR constructors):
    evidence, the SR series, the device as manufacturer and model, completeness."""
    return {
        "evidence": [completed_copy(ds) for ds in headers.values()],
        "series_instance_uid": uids.series("sr"),
        "series_number": SR_SERIES_NUMBER,
        "instance_number": 1,
        "manufacturer": MANUFACTURER,
        "is_complete": True,
        "series_description": f"CAD report {model['name']} {model['version']}"[:64],
        "software_versions": str(model["version"]),
        "manufacturer_model_name": str(model["name"])[:64],
    }
