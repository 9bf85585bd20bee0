"""The summary sub-trees of the Mammography CAD SR (PS3.16 TID 4001/4002, TID 4015-4018).

* TID 4001 "Mammography CAD Overall Impression/Recommendation": row 1 "CAD Processing and
  Findings Summary" (CID 6047), row 2 the TID 4002 body (HAS PROPERTIES: Impression
  Description with the study and breast probabilities, the study's status, the CC/MLO pairs
  of one lesion and the images not analysed, and the algorithm, TID 4019), row 3 one TID 4003
  Individual Impression per finding (INFERRED FROM).
* TID 4000 rows 7-10: "Summary of Detections" / "Summary of Analyses" (CID 6042), each
  INFERRED FROM its "Successful …" container (TID 4015 / 4016) holding one "Detection
  Performed" (TID 4017) per CID 6014 finding type the detector reports, and one "Analysis
  Performed" (TID 4018, CID 6043 "Overall Impression/Recommendation Analysis": the study and
  breast probabilities). Both name the algorithm (TID 4019) and reference every image
  analysed; the images refused (quality gate, decoding) get the same items in "Failed …"
  containers (TID 4015 / 4016 row 3), and the summaries are then "Partially Succeeded".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ContainerContentItem,
    ContentItem,
    ContentSequence,
    TextContentItem,
)
from pydicom.dataset import Dataset

from mammocad.report.dicom import cad_codes as cc
from mammocad.report.dicom.cad_content import (
    CONTAINS,
    HAS_PROPERTIES,
    INFERRED_FROM,
    image_reference,
)
from mammocad.report.dicom.sr import study_status_text, where_of

_SIDE_NAMES = {"L": "Left", "R": "Right"}


def _percent_text(probability: float | None) -> str:
    return "not available" if probability is None else f"{100.0 * float(probability):.0f}%"


def _sentence(text: str) -> str:
    """``text`` ending in exactly one full stop: a reason may already end with one ("Blank.")."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _finding_label(image: Mapping[str, Any], finding: Mapping[str, Any]) -> str:
    """A finding as a reader can find it in this SR: the view and the centre of its box (the
    TID 4021 Center, ORIGINAL pixels), with its result.json id."""
    x1, y1, x2, y2 = (float(v) for v in finding["box"])
    centre = f"centre {(x1 + x2) / 2:.1f}, {(y1 + y2) / 2:.1f}"
    where = where_of(image)
    return f"{finding['id']} ({where}, {centre})" if where else f"{finding['id']} ({centre})"


def _same_lesion_sentences(result: Mapping[str, Any]) -> list[str]:
    """One sentence per CC/MLO pair of ``linked_finding_ids`` (recorded both ways in
    result.json: each pair once). TID 4004 Composite Features would be the coded way; see
    docs/dicom-outputs.md."""
    located = {f["id"]: (image, f) for image in result["images"] for f in image["findings"]}
    sentences, seen = [], set()
    for image in result["images"]:
        for finding in image["findings"]:
            for linked in finding.get("linked_finding_ids") or []:
                pair = frozenset((finding["id"], linked))
                if pair in seen:
                    continue
                seen.add(pair)
                other = _finding_label(*located[linked]) if linked in located else linked
                sentences.append(
                    f"Same lesion in two views: {_finding_label(image, finding)} and {other}."
                )
    return sentences


def impression_description(
    result: Mapping[str, Any], not_processed: Sequence[tuple[Mapping[str, Any], str]]
) -> str:
    """The text of TID 4002 "Impression Description": what result.json says of the study
    (probability, suspicion, status, breasts, CC/MLO links, images not analysed)."""
    suspicion = result.get("suspicion")
    parts = [
        f"Probability of malignancy, study: {_percent_text(result['malignancy_probability'])}"
        + (f" (suspicion: {suspicion})." if suspicion else ".")
    ]
    status = study_status_text(result)
    if status:
        parts.append(_sentence(status))
    parts.extend(
        f"{_SIDE_NAMES[b['laterality']]} breast: {_percent_text(b['malignancy_probability'])}."
        for b in result["breasts"]
    )
    parts.extend(_same_lesion_sentences(result))
    for image, reason in not_processed:
        where = where_of(image)
        label = f"{image['sop_instance_uid']} ({where})" if where else image["sop_instance_uid"]
        parts.append(_sentence(f"Image not analysed: {label}: {reason}"))
    return " ".join(parts)


def overall_impression(
    *,
    impressions: Sequence[ContainerContentItem],
    description: str,
    algorithm: Sequence[ContentItem],
    every_image_analysed: bool = True,
) -> CodeContentItem:
    """TID 4001 (included by TID 4000 row 5 with CONTAINS).

    Row 1 (CID 6047) says "Not all algorithms succeeded" when an image of the study was
    refused (no breast found, failed the quality gate, could not be decoded): the detector did
    not read it, and a reader must not take the summary for a reading of every view. The
    Impression Description names the image and why.
    """
    if every_image_analysed:
        with_findings, without = cc.ALL_SUCCEEDED_WITH_FINDINGS, cc.ALL_SUCCEEDED_WITHOUT_FINDINGS
    else:
        with_findings = cc.NOT_ALL_SUCCEEDED_WITH_FINDINGS
        without = cc.NOT_ALL_SUCCEEDED_WITHOUT_FINDINGS
    summary = with_findings if impressions else without
    item = CodeContentItem(
        cc.CAD_PROCESSING_AND_FINDINGS_SUMMARY, summary, relationship_type=CONTAINS
    )
    body: list[ContentItem] = [
        TextContentItem(
            name=cc.IMPRESSION_DESCRIPTION, value=description, relationship_type=HAS_PROPERTIES
        ),
        *algorithm,
    ]
    item.ContentSequence = ContentSequence([*body, *impressions])
    return item


def _performed(
    name: CodedConcept,
    value: CodedConcept,
    *,
    algorithm: Sequence[ContentItem],
    library: Sequence[Dataset],
) -> CodeContentItem:
    """TID 4017 / TID 4018: what was performed, by which algorithm, on which images."""
    item = CodeContentItem(name, value, relationship_type=CONTAINS)
    item.ContentSequence = ContentSequence(
        [
            *algorithm,
            *(image_reference(header, INFERRED_FROM) for header in library),
        ]
    )
    return item


def _status(
    name: CodedConcept,
    *,
    successful: ContainerContentItem,
    failed: ContainerContentItem | None,
) -> CodeContentItem:
    """TID 4000 rows 7-10: the Result Status (CID 6042) INFERRED FROM the TID 4015 / 4016
    containers: "Succeeded", or "Partially Succeeded" when there is a "Failed …" one."""
    value = cc.PARTIALLY_SUCCEEDED if failed is not None else cc.SUCCEEDED
    summary = CodeContentItem(name, value, relationship_type=CONTAINS)
    summary.ContentSequence = ContentSequence([successful, *([failed] if failed else [])])
    return summary


def _container(
    name: CodedConcept,
    performed: CodedConcept,
    values: Sequence[CodedConcept],
    *,
    algorithm: Sequence[ContentItem],
    library: Sequence[Dataset],
) -> ContainerContentItem:
    """TID 4015 / 4016 row 1 or 3: one TID 4017 / 4018 item per value on ``library``."""
    container = ContainerContentItem(name=name, relationship_type=INFERRED_FROM)
    container.ContentSequence = ContentSequence(
        [_performed(performed, value, algorithm=algorithm, library=library) for value in values]
    )
    return container


def summary_of_detections(
    *,
    algorithm: Sequence[ContentItem],
    library: Sequence[Dataset],
    failed: Sequence[Dataset] = (),
) -> CodeContentItem:
    """TID 4000 rows 7-8 with TID 4015: every detection type succeeded on each image the
    detector read (``library``); on each image the study refused (``failed``: quality gate,
    decoding) it failed (TID 4015 row 3 "Failed Detections"), and the summary is "Partially
    Succeeded", as TID 4001 says "Not all algorithms succeeded" then."""
    kinds = cc.detection_types()
    performed = cc.DETECTION_PERFORMED
    successful = _container(
        cc.SUCCESSFUL_DETECTIONS, performed, kinds, algorithm=algorithm, library=library
    )
    failures = (
        _container(cc.FAILED_DETECTIONS, performed, kinds, algorithm=algorithm, library=failed)
        if failed
        else None
    )
    return _status(cc.SUMMARY_OF_DETECTIONS, successful=successful, failed=failures)


def summary_of_analyses(
    *,
    performed: bool,
    algorithm: Sequence[ContentItem],
    library: Sequence[Dataset],
    failed: Sequence[Dataset] = (),
) -> CodeContentItem:
    """TID 4000 rows 9-10 with TID 4016: the overall impression analysis (the study
    probability) succeeded on the images read (``library``) and failed on those refused
    (``failed``, TID 4016 row 3, then "Partially Succeeded"), or was "Not Attempted" (then
    row 10 is absent) when the result has no study probability."""
    if not performed:
        return CodeContentItem(cc.SUMMARY_OF_ANALYSES, cc.NOT_ATTEMPTED, relationship_type=CONTAINS)
    kinds = [cc.OVERALL_IMPRESSION_ANALYSIS]
    successful = _container(
        cc.SUCCESSFUL_ANALYSES, cc.ANALYSIS_PERFORMED, kinds, algorithm=algorithm, library=library
    )
    failures = (
        _container(
            cc.FAILED_ANALYSES, cc.ANALYSIS_PERFORMED, kinds, algorithm=algorithm, library=failed
        )
        if failed
        else None
    )
    return _status(cc.SUMMARY_OF_ANALYSES, successful=successful, failed=failures)
