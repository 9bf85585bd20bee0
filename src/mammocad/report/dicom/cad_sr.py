"""The study's Mammography CAD SR (PS3.3 A.35.5; PS3.16 TID 4000 "Mammography CAD Document Root").

What mammography workstations read for CAD marks. Content tree, built from the result schema
object (so it says what ``result.json`` says; boxes in ORIGINAL pixels)::

    CONTAINER Mammography CAD Report (DCM 111036)           TID 4000 row 1, template 4000/DCMR
      HAS CONCEPT MOD Language (en-US)                      row 2, TID 1204
      CONTAINS Image Library (DCM 111028)                   row 3
        CONTAINS IMAGE  (each analysed or refused image)    row 4, TID 4020
      CONTAINS CAD Processing and Findings Summary          row 5, TID 4001 (CID 6047)
        HAS PROPERTIES Impression Description + algorithm   TID 4002
        INFERRED FROM Individual Impression/Recommendation  TID 4003, one per finding
          CONTAINS Single Image Finding                     TID 4006 (CID 6014) + TID 4021
      CONTAINS Summary of Detections = Succeeded/Partially  rows 7-8, TID 4015/4017
      CONTAINS Summary of Analyses = (same)/Not Attempted   rows 9-10, TID 4016/4018

The observer is the device: TID 4000 is non-extensible and has no Observation Context row, so
the initial observation context is the header's (PS3.3 C.17.5): General Equipment
(Manufacturer ``mammocad``, model name, software version = the model's) and the Author Observer
Sequence (device). Every finding, detection and analysis names the algorithm (TID 4019).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from highdicom.sr import (
    ContainerContentItem,
    ContentItem,
    ContentSequence,
    LanguageOfContentItemAndDescendants,
)
from highdicom.sr.sop import _SR
from highdicom.sr.templates import DEFAULT_LANGUAGE
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from mammocad.report.dicom import cad_codes as cc
from mammocad.report.dicom.cad_content import (
    algorithm_identification,
    individual_impression,
    library_entry,
    single_image_finding,
)
from mammocad.report.dicom.cad_summary import (
    impression_description,
    overall_impression,
    summary_of_analyses,
    summary_of_detections,
)
from mammocad.report.dicom.charset import declare_character_set
from mammocad.report.dicom.sr import (
    MANUFACTURER,
    not_processed_reasons,
    sr_document_attributes,
    unsized_rejections,
)
from mammocad.report.dicom.uids import OutputUids

#: Mammography CAD SR Storage (PS3.4 B.5, PS3.6 Annex A).
MAMMOGRAPHY_CAD_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.50"
#: Used when result.json carries no suspicion thresholds (``model.risk.suspicion_thresholds``).
DEFAULT_PRESENTATION_THRESHOLD = 0.1
_BY_REFERENCE = {"SELECTED FROM", "INFERRED FROM"}


class MammographyCADSR(_SR):
    """Mammography CAD SR document (PS3.3 A.35.5), on highdicom's SR document base class.

    highdicom has no class for this IOD; its modules (Patient, General Study, SR Document
    Series, General Equipment, SR Document General, SR Document Content, SOP Common) are those
    highdicom's SR base class writes, with this SOP class. :func:`build_cad_sr` rewrites the
    data set's Content Sequence after construction (by-reference items, which highdicom cannot
    parse): read the content from the data set, not from highdicom's ``content`` accessor.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sop_class_uid=MAMMOGRAPHY_CAD_SR_STORAGE, **kwargs)


def presentation_threshold(result: Mapping[str, Any]) -> float:
    """The malignancy probability at or above which a finding is "Presentation Required": the
    model's "intermediate" suspicion threshold as result.json records it."""
    risk = result["model"].get("risk") or {}
    thresholds = risk.get("suspicion_thresholds") or {}
    return float(thresholds.get("intermediate", DEFAULT_PRESENTATION_THRESHOLD))


def _library_positions(root: Dataset) -> dict[str, list[int]]:
    """SOPInstanceUID → Referenced Content Item Identifier of its Image Library entry."""
    for index, item in enumerate(root.ContentSequence, start=1):
        if item.ConceptNameCodeSequence[0].CodeValue == cc.IMAGE_LIBRARY.value:
            return {
                entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID: [1, index, k]
                for k, entry in enumerate(item.ContentSequence, start=1)
            }
    raise ValueError("the content tree has no Image Library")


def _plain(item: Dataset, positions: Mapping[str, list[int]], in_library: bool) -> Dataset:
    """``item`` as a plain pydicom data set; IMAGE children that point into the Image Library
    become by-reference relationships (PS3.3 C.17.3.2.4, Referenced Content Item Identifier),
    as TID 4017 row 8 and TID 4021 rows 2 and 4 require. TID 4020 IMAGE items lose the concept
    name highdicom insists on (the template gives them none)."""
    out = Dataset()
    for element in item:
        if element.keyword == "ContentSequence":
            continue
        if in_library and element.keyword == "ConceptNameCodeSequence":
            continue
        out.add(element)
    if "ContentSequence" in item:
        children = []
        is_library = (
            item.get("ValueType") == "CONTAINER"
            and item.ConceptNameCodeSequence[0].CodeValue == cc.IMAGE_LIBRARY.value
        )
        for child in item.ContentSequence:
            uid = ""
            if child.get("ValueType") == "IMAGE":
                uid = str(child.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            if not is_library and uid in positions and child.RelationshipType in _BY_REFERENCE:
                reference = Dataset()
                reference.RelationshipType = child.RelationshipType
                reference.ReferencedContentItemIdentifier = positions[uid]
                children.append(reference)
            else:
                children.append(_plain(child, positions, is_library))
        out.ContentSequence = DicomSequence(children)
    return out


def _content(
    result: Mapping[str, Any],
    headers: Mapping[str, Dataset],
    threshold: float,
    refused: Mapping[str, Dataset],
) -> ContainerContentItem:
    model = result["model"]
    algorithm: list[ContentItem] = algorithm_identification(
        str(model["name"]),
        str(model["version"]),
        [f"presentation threshold (probability of cancer) {threshold:g}"],
    )
    every = {**refused, **headers}
    images = [i for i in result["images"] if i["sop_instance_uid"] in every]
    library = ContainerContentItem(name=cc.IMAGE_LIBRARY, relationship_type="CONTAINS")
    library.ContentSequence = ContentSequence(
        [library_entry(i, every[i["sop_instance_uid"]]) for i in images]
    )
    impressions = [
        individual_impression(
            single_image_finding(
                finding,
                headers[image["sop_instance_uid"]],
                algorithm=algorithm,
                threshold=threshold,
            ),
            float(finding["malignancy_probability"]),
            threshold,
        )
        for image in images
        if image["status"] == "processed"
        for finding in image["findings"]
    ]
    keys = [i["sop_instance_uid"] for i in images]
    sources = [headers[key] for key in keys if key in headers]
    failed = [refused[key] for key in keys if key not in headers]
    root = ContainerContentItem(name=cc.MAMMOGRAPHY_CAD_REPORT, template_id="4000")
    root.ContentSequence = ContentSequence(
        [
            *LanguageOfContentItemAndDescendants(DEFAULT_LANGUAGE),
            library,
            overall_impression(
                impressions=impressions,
                description=impression_description(result, not_processed_reasons(result, headers)),
                algorithm=algorithm,
                every_image_analysed=all(i["status"] == "processed" for i in result["images"])
                and not unsized_rejections(result),
            ),
            summary_of_detections(algorithm=algorithm, library=sources, failed=failed),
            summary_of_analyses(
                performed=result["malignancy_probability"] is not None,
                algorithm=algorithm,
                library=sources,
                failed=failed,
            ),
        ]
    )
    return root


def _author_observer(model: Mapping[str, Any], uids: OutputUids) -> Dataset:
    """Author Observer Sequence item (PS3.3 C.17.2.3, Identified Person or Device macro,
    Table 10-23a): Observer Type DEV, the device UID of the TID 1500 SR's observer, the model as
    station name and model name. Institution Name and Code Sequence are Type 2: empty, the
    device belongs to no institution of its own."""
    device = Dataset()
    device.ObserverType = "DEV"
    device.InstitutionName = None
    device.InstitutionCodeSequence = []
    device.StationName = str(model["name"])[:16]
    device.DeviceUID = uids.derive("device")
    device.Manufacturer = MANUFACTURER
    device.ManufacturerModelName = f"{model['name']} {model['version']}"[:64]
    return device


def build_cad_sr(
    result: Mapping[str, Any],
    headers: Mapping[str, Dataset],
    *,
    uids: OutputUids,
    threshold: float | None = None,
    refused: Mapping[str, Dataset] | None = None,
) -> MammographyCADSR:
    """The Mammography CAD SR of ``result`` (the result schema object of one study).

    ``headers`` are the processed source images' headers (no pixel data) keyed by
    SOPInstanceUID, so at least one is needed; ``refused`` those of the study's images that
    were not processed (quality gate, decoding) and whose header could be read. The Image
    Library holds both: the detections and analyses succeeded on the first and failed on the
    second (TID 4015 / 4016). ``threshold`` is the presentation threshold (default
    :func:`presentation_threshold`).
    """
    if not headers:
        raise ValueError("a Mammography CAD SR needs at least one DICOM source image header")
    model = result["model"]
    threshold = presentation_threshold(result) if threshold is None else float(threshold)
    # one library entry per instance: a refused copy of an analysed image is not listed again
    listed = {str(h.SOPInstanceUID) for h in headers.values()}
    kept: dict[str, Dataset] = {}
    for key, header in (refused or {}).items():
        if key not in headers and str(header.SOPInstanceUID) not in listed:
            listed.add(str(header.SOPInstanceUID))
            kept[key] = header
    refused = kept
    content = _content(result, headers, threshold, refused)
    sr = MammographyCADSR(
        content=content,
        # a UID of its own: the TID 1500 SR of the same study is another SOP class
        sop_instance_uid=uids.instance("mammography-cad-sr"),
        # every image the content references is evidence (PS3.3 C.17.2.3)
        **sr_document_attributes(model, {**headers, **refused}, uids),
    )
    root = _plain(sr, _library_positions(sr), in_library=False)
    sr.ContentSequence = root.ContentSequence
    sr.AuthorObserverSequence = [_author_observer(model, uids)]
    declare_character_set(sr)  # last: every text value is in place
    return sr
