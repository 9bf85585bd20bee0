"""``mammocad eval study``: study-level ROC-AUC, operating points and calibration of the
``result.json`` files of an ``analyze`` or ``batch`` run against study labels.

Labels come from a CSV (``study_instance_uid,label`` plus optional ``patient_id`` and
``group`` columns; label 1 = malignant), from phantom folders (their ``truth.json``), or from
public datasets' breast label files (:func:`breast_labels_from_dataset`; a study is malignant
when a breast is, :func:`study_labels_from_breasts`).
Scores are the rounded probabilities users see; the unrounded ones (``x_`` field) measure what
rounding costs. Rejected studies have no probability: they are counted as technical defects
and left out of the AUC.

Every report ends with the **calibration test** of the Moscow experiment (docs/study-metrics.md):
studies, share positive, AUC, sensitivity and specificity at the service's threshold — by
default the ``high`` suspicion threshold the results were made with — and the share of
technical defects (studies ``rejected``, or with an image the service could not read: what it
was sent and did not answer for; a view never sent is no defect of the service), with whether
the set qualifies (≥ 400 labelled studies, ≥ 10 % positive).
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

from rich.console import Console

from mammocad.datasets.breast_labels import (
    BreastLabel,
    LabelFile,
    merged_group,
    outcome_of,
    read_dataset_labels,
    read_table,
    side_of,
)
from mammocad.eval.study_metrics import (
    StudyMetrics,
    evaluate_study,
    evaluate_subgroups,
    metrics_at_threshold,
)
from mammocad.eval.study_report import (
    CalibrationTestSummary,
    calibration_test_summary,
    check_calibration_test_set,
    write_study_csv,
    write_study_markdown,
)
from mammocad.io.naming import patient_key
from mammocad.structures import Laterality
from mammocad.synthetic import read_truth

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyLabel:
    malignant: bool
    patient_id: str
    group: str | None = None
    #: a breast label of an image-keyed dataset: the SOP Instance UIDs of the study's images
    #: whose file names it was matched by, so that an image rejected before its side was read
    #: is still known to be of this breast (:func:`study_labels_from_breasts`)
    images: frozenset[str] = field(default=frozenset(), compare=False)


_Key = TypeVar("_Key", str, tuple[str, str])


def labels_from_csv(path: Path) -> dict[str, StudyLabel]:
    """``study_instance_uid,label[,patient_id][,group]`` rows → labels by study UID; a study
    in several rows (one per breast or finding) is malignant when one of them is.

    Raises:
        ValueError: the file cannot be read, lacks a column, or a label is not 1 or 0.
    """
    table = read_table(path)
    if not table.columns >= {"study_instance_uid", "label"}:
        raise ValueError(
            f"{path}: needs the columns study_instance_uid and label{_has(table.columns)}"
        )
    labels: dict[str, StudyLabel] = {}
    for index, row in enumerate(table.rows):
        _add_label(labels, row["study_instance_uid"], _row_label(table, index))
    return labels


def _has(columns: frozenset[str]) -> str:
    """The columns a label file has, for an error saying which it lacks (a header typed
    ``Label`` or ``StudyInstanceUID`` is not ``label``: names are matched exactly)."""
    names = ", ".join(sorted(columns)) or "none"
    return f" in lower case, as written here; its header names: {names}"


def unmatched_labels(labels: dict[str, StudyLabel], results: Sequence[dict[str, Any]]) -> str:
    """Why no result has a label, when none has: labels are matched by Study Instance UID
    only, and a site's export often keys them by accession number or patient ID."""
    named = next(iter(labels), None)
    example = f" (e.g. result {results[0]['study_instance_uid']}, label {named})" if named else ""
    return (
        f"none of the {len(results)} results is of a study the {len(labels)} labels name"
        f"{example}: the labels' study_instance_uid must be the study's Study Instance UID "
        "(0020,000D), as result.json records it, not its accession number or patient ID; "
        "labels per patient and breast go in --dataset-labels (patient_id,laterality,label)"
    )


def _add_label(labels: dict[_Key, StudyLabel], key: _Key, label: StudyLabel) -> None:
    """``label`` under ``key``; a key given before stays malignant when it was (a later benign
    row of the same study or breast must not overwrite it) and keeps its patient; rows naming
    different groups make it "mixed" (:func:`~mammocad.datasets.breast_labels.merged_group`)."""
    known = labels.get(key)
    labels[key] = (
        label
        if known is None
        else replace(
            known,
            malignant=known.malignant or label.malignant,
            group=merged_group((known.group, label.group)),
        )
    )


def _row_label(table: LabelFile, index: int) -> StudyLabel:
    """A label row's outcome (1 = malignant), patient (default: the study) and group."""
    row = table.rows[index]
    return StudyLabel(
        malignant=outcome_of(table, index),
        patient_id=row.get("patient_id") or row["study_instance_uid"],
        group=row.get("group") or None,
    )


#: a breast: (Study Instance UID, laterality "R" or "L")
BreastKey = tuple[str, str]


def breast_labels_from_csv(path: Path) -> dict[BreastKey, StudyLabel]:
    """``study_instance_uid,laterality,label[,patient_id][,group]`` rows → labels by breast;
    laterality ``R``/``L`` (or ``RIGHT``/``LEFT``), label 1 = malignant; a breast in several
    rows (one per finding) is malignant when one of them is."""
    table = read_table(path)
    if not table.columns >= {"study_instance_uid", "laterality", "label"}:
        raise ValueError(
            f"{path}: breast labels need the columns study_instance_uid, laterality and "
            f"label{_has(table.columns)}"
        )
    labels: dict[BreastKey, StudyLabel] = {}
    for index, row in enumerate(table.rows):
        side = side_of(table, index, row["laterality"])
        _add_label(labels, (row["study_instance_uid"], side.value), _row_label(table, index))
    return labels


def breast_labels_from_phantoms(folder: Path) -> dict[BreastKey, StudyLabel]:
    """Labels of both breasts of every phantom study (``truth.json``) under ``folder``."""
    labels = {}
    for path in sorted(folder.rglob("truth.json")):
        truth = read_truth(path)
        for side in (Laterality.R, Laterality.L):
            labels[(truth.study_instance_uid, side.value)] = StudyLabel(
                malignant=truth.breast(side).malignant, patient_id=truth.patient.patient_id
            )
    return labels


def breast_labels_from_dataset(
    label_files: Sequence[Path], results: Sequence[dict[str, Any]]
) -> dict[BreastKey, StudyLabel]:
    """Labels of the analysed breasts from public datasets' label files
    (:mod:`mammocad.datasets.breast_labels`), which key them by patient and side (CBIS-DDSM,
    CMMD, RSNA 2023) or by image (INbreast, VinDr-Mammo, mini-MIAS).

    A result is matched to patient labels by its ``x_patient_id`` read as a patient key, so
    CBIS-DDSM's ``Mass-Test_P_00173_LEFT_CC`` and the ``P_00173`` of a ``--group-by patient``
    study both match ``P_00173``; to image labels by its images' file names
    (:func:`image_keys`): the breast an image was analysed in takes its label, malignant when
    any of its labelled images is.

    Raises:
        ValueError: a file of no known dataset; no result of a labelled patient or image; or
            a labelled patient in several results (one breast needs one probability).
    """
    dataset = read_dataset_labels(label_files)
    labels = _patient_labels(dataset.breasts, results)
    for key, label in _image_labels(dataset.images, results).items():
        known = labels.get(key)
        labels[key] = (
            label
            if known is None
            else replace(
                known,
                malignant=known.malignant or label.malignant,
                images=known.images | label.images,
            )
        )
    if not labels:
        raise ValueError(
            f"none of the {len(results)} results is of a patient or an image in the label "
            "files. Results are matched by their x_patient_id, the images' Patient ID "
            "(CBIS-DDSM, CMMD, RSNA), or by their images' file names (INbreast, VinDr-Mammo, "
            "mini-MIAS): "
            "check that the labels are of these images; results written before mammocad "
            "recorded the Patient ID have none, analyse again"
        )
    return labels


def study_labels_from_breasts(
    breast_labels: dict[BreastKey, StudyLabel], results: Sequence[dict[str, Any]]
) -> dict[str, StudyLabel]:
    """Study labels from breast labels: malignant when a labelled breast is.

    A study is labelled only when every breast it has an image of is: an unlabelled breast
    might be the malignant one (CBIS-DDSM and CMMD list only breasts with a lesion, so their
    other breast leaves the study unlabelled). The study's group is its breasts' where they
    agree, else ``mixed``. An image with no laterality (rejected before its side was read) is
    of the breast whose label its file name matched, where one did. A study with no image of
    a known side (all rejected so, or listed failed in ``summary.json``) is labelled from its
    breasts' labels alone (:func:`_label_without_sides`), so that it still counts as rejected.

    Raises:
        ValueError: breasts are labelled but no study is (the message says why and what to
            do), rather than an evaluation of nothing.
    """
    matched = _matched_images(breast_labels)
    labels = {}
    for result in results:
        uid = str(result["study_instance_uid"])
        sides = _imaged_sides(result, matched)
        named = sorted(side for side in sides if side is not None)
        if not named:
            label = _label_without_sides(uid, breast_labels)
            if label is not None:
                labels[uid] = label
            continue
        breasts = [breast_labels.get((uid, side)) for side in named]
        known = [label for label in breasts if label is not None]
        if not known or len(known) < len(breasts) or None in sides:
            continue
        labels[uid] = StudyLabel(
            malignant=any(label.malignant for label in known),
            patient_id=known[0].patient_id,
            group=merged_group(label.group for label in known),
        )
    if breast_labels and not labels:
        raise ValueError(
            f"the labels name {len(breast_labels)} analysed breasts, but none of the "
            f"{len(results)} studies has a label for every breast it has an image of, so no "
            "study can be labelled (CBIS-DDSM and CMMD list only breasts with a lesion; the "
            "other breast may hide a cancer): evaluate per breast with eval study --level breast"
        )
    return labels


def _matched_images(breast_labels: dict[BreastKey, StudyLabel]) -> dict[tuple[str, str], str]:
    """The side of each image a breast label was matched by file name, by (study UID, SOP
    Instance UID)."""
    return {
        (uid, image): side for (uid, side), label in breast_labels.items() for image in label.images
    }


def _sent_sides(result: dict[str, Any], matched: dict[tuple[str, str], str]) -> set[str]:
    """The sides ``result`` may have been sent an image of: those of its images (rejected
    ones too, :func:`_imaged_sides`), or both where that is not known — an image of no known
    side may be of either, and a result listing no image (a study listed failed in
    ``summary.json``) says nothing of what was sent."""
    sides = _imaged_sides(result, matched)
    if None in sides or not result.get("images"):
        return {Laterality.R.value, Laterality.L.value}
    return {side for side in sides if side is not None}


def _imaged_sides(result: dict[str, Any], matched: dict[tuple[str, str], str]) -> set[str | None]:
    """The sides ``result`` has an image of (rejected ones too) or a probability for; an image
    without laterality takes the side of the label ``matched`` by (study UID, SOP Instance
    UID), else stays ``None``."""
    uid = str(result["study_instance_uid"])
    sides = {
        image.get("laterality") or matched.get((uid, str(image.get("sop_instance_uid"))))
        for image in result.get("images") or []
    }
    return sides | {
        breast.get("laterality")
        for breast in result.get("breasts") or []
        if breast.get("malignancy_probability") is not None
    }


def _label_without_sides(uid: str, breast_labels: dict[BreastKey, StudyLabel]) -> StudyLabel | None:
    """The label of a study none of whose images has a known side: malignant when a labelled
    breast of it is (the cancer may be in what was sent), benign only when both breasts are
    labelled benign (else an unlabelled one may have been sent), otherwise ``None``."""
    known = [label for side in ("R", "L") if (label := breast_labels.get((uid, side))) is not None]
    malignant = any(label.malignant for label in known)
    if not malignant and len(known) < 2:
        return None
    return StudyLabel(
        malignant=malignant,
        patient_id=known[0].patient_id,
        group=merged_group(label.group for label in known),
    )


def _patient_labels(
    truth_by_patient: dict[tuple[str, Laterality], BreastLabel],
    results: Sequence[dict[str, Any]],
) -> dict[BreastKey, StudyLabel]:
    # label files' IDs read as patient keys too, as the results' are
    truth = {
        (patient_key(patient) or patient, side): label
        for (patient, side), label in truth_by_patient.items()
    }
    labelled = {patient for patient, _ in truth}
    studies_of: dict[str, list[str]] = defaultdict(list)
    for result in results:
        patient = patient_key(result.get("x_patient_id"))
        if patient is not None and patient in labelled:
            studies_of[patient].append(str(result["study_instance_uid"]))
    split = {patient: uids for patient, uids in studies_of.items() if len(uids) > 1}
    if split:
        patient, uids = next(iter(split.items()))
        raise ValueError(
            f"{len(split)} labelled patients are in several analysed studies (e.g. {patient}: "
            f"{len(uids)} studies), but each breast needs one probability: where a dataset "
            "stores every view as a study of its own (CBIS-DDSM), analyse it with --group-by "
            "patient; for several examinations of a woman, give labels per study (--labels)"
        )
    labels = {}
    for (patient, side), breast in truth.items():
        for uid in studies_of.get(patient, ()):
            labels[(uid, side.value)] = StudyLabel(
                malignant=breast.malignant, patient_id=patient, group=breast.group or "unknown"
            )
    return labels


def _image_labels(
    truth_by_image: dict[str, BreastLabel], results: Sequence[dict[str, Any]]
) -> dict[BreastKey, StudyLabel]:
    labels: dict[BreastKey, StudyLabel] = {}
    # the groups a breast's images name, merged as a breast's rows are (merged_group), so that
    # the breast's group does not depend on the order of its images
    named: dict[BreastKey, list[str | None]] = defaultdict(list)
    for result in results:
        uid = str(result["study_instance_uid"])
        for image in result.get("images") or []:
            keys = [key for key in image_keys(image) if key in truth_by_image]
            if not keys:
                continue
            truth = truth_by_image[keys[0]]
            # an image rejected before its side was read (a bare PNG) is of the breast the
            # label file names: a rejected film must still count in its study's label
            side = image.get("laterality")
            side = side if side in ("R", "L") else truth.laterality.value
            # the dataset's woman where it has one (mini-MIAS's pairs, VinDr-Mammo's study),
            # else the result's
            patient = truth.patient_id or patient_key(result.get("x_patient_id")) or uid
            known = labels.get((uid, side))
            named[(uid, side)].append(truth.group)
            labels[(uid, side)] = StudyLabel(
                malignant=truth.malignant or (known is not None and known.malignant),
                patient_id=patient,
                group=merged_group(named[(uid, side)]) or "unknown",
                images=(known.images if known else frozenset()) | {str(image["sop_instance_uid"])},
            )
    return labels


def image_keys(image: dict[str, Any]) -> list[str]:
    """What truth may name a result's image by: its SOP Instance UID, its file's name without
    extension (VinDr-Mammo's ``image_id``, mini-MIAS's ``mdb001``; a zip member's too), and the
    number that name starts with before a ``_`` (INbreast's File Name, ``22614097`` of
    ``22614097_<hash>_MG_L_CC_ANON.dcm``)."""
    keys = [str(image["sop_instance_uid"])]
    source = image.get("source")
    if source:
        stem = PurePosixPath(str(source).replace("\\", "/").split("!")[-1]).stem
        keys.append(stem)
        number = stem.split("_", 1)[0]
        if number != stem and number.isdigit():
            keys.append(number)
    return keys


def labels_from_phantoms(folder: Path) -> dict[str, StudyLabel]:
    """Labels of every phantom study (``truth.json``) under ``folder``."""
    labels = {}
    for path in sorted(folder.rglob("truth.json")):
        truth = read_truth(path)
        labels[truth.study_instance_uid] = StudyLabel(
            malignant=truth.malignant, patient_id=truth.patient.patient_id
        )
    return labels


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyEvaluation:
    metrics: StudyMetrics
    n_studies: int
    n_rejected: int
    n_unlabelled: int
    report: Path
    #: the Moscow experiment's study-level test; ``None`` at breast level
    calibration_test: CalibrationTestSummary | None


#: what subgroup tables break the metrics down by: the labels' ``group`` (density, site…)
#: or the images' manufacturer (the vendor whose processing made the pixels)
Subgroups = Literal["label", "manufacturer"]


def manufacturer_of(result: dict[str, Any], side: str | None = None) -> str:
    """The Manufacturer (0008,0070) of a result's images (of one breast with ``side``):
    ``mixed`` where they differ, ``unknown`` where none says (PNG files)."""
    names = {
        str(image.get("manufacturer")).strip()
        for image in result.get("images") or []
        if image.get("manufacturer") and (side is None or image.get("laterality") == side)
    }
    return names.pop() if len(names) == 1 else "mixed" if names else "unknown"


_RESULT = re.compile(r"[^/]+/result\.json")  # a batch archive's results, one folder deep


def _parse_result(text: bytes, name: str) -> dict[str, Any]:
    """One result.json; ValueError naming the file when it is none (a run killed while
    writing it, a file edited by hand, another program's JSON)."""
    again = "run mammocad analyze again on that study, or remove its folder"
    try:
        result = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError included
        raise ValueError(f"{name} is not valid JSON ({exc}): {again}.") from exc
    if not isinstance(result, dict) or "study_instance_uid" not in result:
        raise ValueError(f"{name} is no mammocad result (no study_instance_uid): {again}.")
    return result


def read_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every ``<study>/result.json`` of an ``analyze`` output folder or a ``batch`` archive
    (the zip itself, unextracted), then a ``rejected`` result without images for each study
    that ``summary.json`` lists as failed (an internal error: no result.json was written), so
    that it counts as rejected — a technical defect — rather than as never sent.

    Where ``summary.json`` lists the run's studies, only the result.json files it lists are
    read: a folder left by an earlier run into the same folder (a study not among this run's
    inputs) holds another run's, perhaps another model's, result. How many were left out is
    logged as a warning.

    Raises:
        ValueError: a result.json that is not valid JSON or no result (the message names it),
            or no ``<study>/result.json`` at all (:func:`_no_results` says where they are).
    """
    summary: dict[str, Any] | None = None
    members: list[str] | None = None
    if results_dir.is_file() and zipfile.is_zipfile(results_dir):
        with zipfile.ZipFile(results_dir) as archive:
            members = archive.namelist()
            if "summary.json" in members:
                summary = _summary(archive.read("summary.json"))
            names = _listed(
                sorted(n for n in members if _RESULT.fullmatch(n)), summary, results_dir
            )
            results = [_parse_result(archive.read(n), f"{results_dir}!{n}") for n in names]
    else:
        if (results_dir / "summary.json").is_file():
            summary = _summary((results_dir / "summary.json").read_bytes())
        found = [
            path.relative_to(results_dir).as_posix()
            for path in sorted(results_dir.glob("*/result.json"))
        ]
        results = [
            _parse_result((results_dir / name).read_bytes(), str(results_dir / name))
            for name in _listed(found, summary, results_dir)
        ]
    read = results + _failed_studies(summary, results)
    if not read:
        raise ValueError(_no_results(results_dir, members))
    return read


def _no_results(results_dir: Path, members: list[str] | None) -> str:
    """Why nothing was read from ``results_dir`` (``members``: its names where it is a zip)
    and what to give instead: a zip of the output folder itself, or the service's data dir,
    holds its result.json files one folder deeper than analyze and batch write them."""
    if members is None:
        deeper = [p.relative_to(results_dir).as_posix() for p in results_dir.rglob("result.json")]
    else:
        deeper = [name for name in members if PurePosixPath(name).name == "result.json"]
    if not deeper:
        return (
            f"no <study>/result.json in {results_dir}: give the output folder of mammocad "
            "analyze (a folder per study holding its result.json), a batch archive (.zip), or "
            "the studies/ folder of the service's data dir"
        )
    example = min(deeper, key=lambda name: (name.count("/"), name))
    if example.count("/") == 1:  # where they belong, but not among summary.json's studies
        return (
            f"{results_dir}: its summary.json lists none of its {len(deeper)} result.json files "
            "(an earlier run's, into the same folder): analyze into an empty folder"
        )
    if members is not None:
        where = "unzip it and give that folder, or zip the study folders themselves"
    elif "/" not in example:  # one study's folder
        where = f"give the folder that holds the study folders ({results_dir.parent})"
    else:
        where = f"give {results_dir / PurePosixPath(example).parent.parent}"
    return (
        f"{results_dir} holds {len(deeper)} result.json files, but not one folder down as "
        f"analyze and batch write them, one folder per study (e.g. {example}): {where}"
    )


def _summary(text: bytes) -> dict[str, Any] | None:
    """A ``summary.json`` that lists studies; ``None`` where it is unreadable or another
    program's (its results are then read without it, as before summaries listed studies)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("studies"), list):
        return None
    return data


def _listed(names: list[str], summary: dict[str, Any] | None, where: Path) -> list[str]:
    """The result.json paths (relative, ``<folder>/result.json``) of ``names`` that
    ``summary`` lists for a study of its run; all of them without a summary."""
    if summary is None:
        return names
    listed = {
        str(entry["result"])
        for entry in summary["studies"]
        if isinstance(entry, dict) and entry.get("result")
    }
    kept = [name for name in names if name in listed]
    if len(kept) < len(names):
        logger.warning(
            "%s: %d result folders are not among the studies its summary.json lists and were "
            "ignored (an earlier run's, into the same folder); analyze into an empty folder to "
            "keep runs apart",
            where,
            len(names) - len(kept),
        )
    if missing := len(listed) - len(kept):
        logger.warning(
            "%s: %d result.json files its summary.json lists are missing (removed or not "
            "copied): those studies are not evaluated",
            where,
            missing,
        )
    return kept


def _failed_studies(
    summary: dict[str, Any] | None, results: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The studies ``summary`` lists with no result (``record_failed_study``) and that have
    no result.json, as rejected results of the summary's model; none where the summary is
    missing or unreadable (it only adds to the results)."""
    if summary is None:
        return []
    have = {str(result["study_instance_uid"]) for result in results}
    failed: list[dict[str, Any]] = []
    for entry in summary["studies"]:
        if not isinstance(entry, dict) or entry.get("result") is not None:
            continue
        uid = entry.get("study_instance_uid")
        if uid is None or str(uid) in have:
            continue
        have.add(str(uid))
        failed.append(
            {
                "study_instance_uid": str(uid),
                "status": "rejected",
                "malignancy_probability": None,
                "suspicion": None,
                "model": summary.get("model") or {},
                "breasts": [],
                "images": [],
            }
        )
    return failed


def run_eval_study(
    *,
    results_dir: Path,
    labels: dict[str, StudyLabel],
    out_dir: Path,
    bootstrap: int = 1000,
    threshold: float | None = None,
    console: Console | None = None,
    results: Sequence[dict[str, Any]] | None = None,
    subgroups_by: Subgroups = "label",
) -> StudyEvaluation:
    """Evaluate every labelled result; write ``study_metrics.md`` and ``study_metrics.csv``,
    with sensitivity and specificity at the results' ``intermediate`` and ``high`` suspicion
    thresholds on the rounded probabilities. ``threshold``: the calibration test's operating
    point (``None``: the results' ``high`` threshold, 0.5 when they record none).
    ``results``: those of ``results_dir`` where the caller has read them already.
    ``subgroups_by``: the labels' ``group`` or the images' manufacturer
    (:func:`manufacturer_of`)."""
    console = console or Console(stderr=True)
    scores, raw, truth, patients, groups, defective = [], [], [], [], [], []
    rejected = rejected_malignant = unlabelled = 0
    recorded: dict[str, float] = {}
    read = results if results is not None else read_results(results_dir)
    for result in read:
        label = labels.get(str(result["study_instance_uid"]))
        if label is None:
            unlabelled += 1
            continue
        recorded = recorded or _suspicion_thresholds(result)
        if result["malignancy_probability"] is None:
            rejected += 1
            rejected_malignant += int(label.malignant)
            continue
        defective.append(has_rejected_image(result))
        scores.append(float(result["malignancy_probability"]))
        raw.append(float(result.get("x_malignancy_probability_unrounded", scores[-1])))
        truth.append(int(label.malignant))
        patients.append(label.patient_id)
        groups.append(
            manufacturer_of(result) if subgroups_by == "manufacturer" else label.group or "unknown"
        )
    if read and unlabelled == len(read):
        raise ValueError(unmatched_labels(labels, read))
    if not scores:
        raise ValueError(f"no labelled, processed result.json under {results_dir}")
    # sensitivity and specificity at the bundle's thresholds, on the probabilities users see
    # (the suspicion category compares the rounded number)
    bundle = sorted(set(recorded.values()))
    metrics = _at_shown(
        evaluate_study(raw, truth, patients, n_bootstrap=bootstrap), scores, truth, bundle
    )
    subgroups = {
        key: _at_shown(
            sub,
            [s for s, g in zip(scores, groups, strict=True) if g == key],
            [t for t, g in zip(truth, groups, strict=True) if g == key],
            bundle,
        )
        for key, sub in evaluate_subgroups(
            raw, truth, groups, patients, n_bootstrap=bootstrap
        ).items()
    }
    operating = threshold if threshold is not None else recorded.get("high", 0.5)
    test = calibration_test_summary(
        scores, truth, defective, threshold=operating, patient_ids=patients, n_bootstrap=bootstrap
    )
    # the set is every labelled study sent; a rejected one has no score but is a defect
    labelled = len(scores) + rejected
    test = replace(
        test,
        n_studies=labelled,
        share_positive=(sum(truth) + rejected_malignant) / labelled,
        share_technical_defects=(sum(defective) + rejected) / labelled,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_study_csv(metrics, out_dir / "study_metrics.csv", subgroups=subgroups)
    report = write_study_markdown(
        metrics, out_dir / "study_metrics.md", subgroups=subgroups, calibration_test=test
    )
    console.print(
        f"{len(scores)} studies ({sum(truth)} malignant), {rejected} rejected, "
        f"{unlabelled} without a label; {_auc_text(metrics, ', must stay < 0.005')}",
        markup=False,  # an interval without bootstrap, "[nan, nan]", is no style tag
    )
    # a labelled study with no result was never analysed here (or its result is elsewhere):
    # it is in no figure, not even the calibration test's defects, which a reader must know
    missing = set(labels) - {str(result["study_instance_uid"]) for result in read}
    if missing:
        console.print(
            f"{len(missing)} labelled studies have no result here (e.g. {min(missing)}) and are "
            "in none of these figures: analyse them too, or drop their labels"
        )
    calibration = metrics.calibration
    console.print(
        f"ECE {calibration.ece:.3f}, Brier {calibration.brier:.3f}; exactly calibrated "
        f"probabilities would show ECE {calibration.ece_if_calibrated:.3f} by chance on these "
        f"studies (95th percentile {calibration.ece_if_calibrated_p95:.3f})"
    )
    check = check_calibration_test_set(test)
    at = test.at_threshold
    console.print(
        f"calibration test: {test.n_studies} studies, {test.share_positive:.1%} positive, "
        f"sensitivity {at.sensitivity:.3f} and specificity {at.specificity:.3f} at "
        f"{at.threshold:g}, technical defects {test.share_technical_defects:.1%}; "
        + (
            "the set qualifies"
            if check.passed
            else "not a qualifying set: " + "; ".join(check.problems)
        )
    )
    return StudyEvaluation(
        metrics=metrics,
        n_studies=len(scores),
        n_rejected=rejected,
        n_unlabelled=unlabelled,
        report=report,
        calibration_test=test,
    )


def run_eval_breasts(
    *,
    results_dir: Path,
    labels: dict[BreastKey, StudyLabel],
    out_dir: Path,
    bootstrap: int = 1000,
    console: Console | None = None,
    results: Sequence[dict[str, Any]] | None = None,
    subgroups_by: Subgroups = "label",
) -> StudyEvaluation:
    """Breast-level ROC-AUC of every labelled breast of the results (patient-cluster
    bootstrap: a woman's breasts are drawn together), on the 2-decimal probabilities users see
    and unrounded; writes ``breast_metrics.md`` and ``.csv``. A breast without a probability
    (its images rejected) is counted and left out; a labelled breast the study has no image
    of was never sent (a one-breast study, with labels kept per patient) and is neither. No
    calibration test: that is the Moscow experiment's study-level set. ``results``: those of
    ``results_dir`` where the caller has read them already; ``subgroups_by`` as for
    :func:`run_eval_study`."""
    console = console or Console(stderr=True)
    raw, truth, patients, groups = [], [], [], []
    rejected = unlabelled = 0
    labelled_sides: dict[str, set[str]] = defaultdict(set)
    for uid, side in labels:
        labelled_sides[uid].add(side)
    matched = _matched_images(labels)
    for result in results if results is not None else read_results(results_dir):
        uid = str(result["study_instance_uid"])
        listed = {str(breast["laterality"]) for breast in result.get("breasts") or []}
        # results list both breasts, and labels kept per patient label both: only a breast
        # the study was sent an image of can have been rejected
        sent = _sent_sides(result, matched)
        # a labelled breast the result does not list (no image of it processed) has no
        # probability either
        rejected += len((labelled_sides.get(uid, set()) - listed) & sent)
        for breast in result.get("breasts") or []:
            label = labels.get((uid, str(breast["laterality"])))
            shown = breast["malignancy_probability"]
            if label is None:
                # a side with no image (one film per study) is no unlabelled breast
                unlabelled += shown is not None
                continue
            if shown is None:
                rejected += str(breast["laterality"]) in sent
                continue
            raw.append(float(breast.get("x_malignancy_probability_unrounded", shown)))
            truth.append(int(label.malignant))
            patients.append(label.patient_id)
            side = str(breast["laterality"])
            groups.append(
                manufacturer_of(result, side)
                if subgroups_by == "manufacturer"
                else label.group or "unknown"
            )
    if not raw:
        raise ValueError(f"no labelled breast with a probability under {results_dir}")
    metrics = evaluate_study(raw, truth, patients, n_bootstrap=bootstrap)
    subgroups = evaluate_subgroups(raw, truth, groups, patients, n_bootstrap=bootstrap)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_study_csv(metrics, out_dir / "breast_metrics.csv", subgroups=subgroups)
    report = write_study_markdown(
        metrics, out_dir / "breast_metrics.md", title="Breast-level metrics", subgroups=subgroups
    )
    console.print(
        f"{len(raw)} breasts ({sum(truth)} malignant), {rejected} without a probability, "
        f"{unlabelled} without a label; {_auc_text(metrics)}",
        markup=False,
    )
    return StudyEvaluation(
        metrics=metrics,
        n_studies=len(raw),
        n_rejected=rejected,
        n_unlabelled=unlabelled,
        report=report,
        calibration_test=None,
    )


def _auc_text(metrics: StudyMetrics, rounding_note: str = "") -> str:
    """The AUC with its interval, then on the 2-decimal probabilities and what rounding cost."""
    auc, rounding = metrics.auc, metrics.rounding
    return (
        f"AUC {auc.auc:.3f} [{auc.ci_low:.3f}, {auc.ci_high:.3f}]; on the 2-decimal "
        f"probabilities users see {rounding.auc_rounded:.3f} (lost to rounding: "
        f"{rounding.loss:.4f}{rounding_note})"
    )


def has_rejected_image(result: dict[str, Any]) -> bool:
    """A study the service answered for in part: an image it was sent was rejected (not
    readable, no breast found, not a mammogram). A ``partial`` study whose missing view was
    never sent (mini-MIAS's one film per woman) is no technical defect, nor is an image the
    quality gate flagged but the service read (docs/quality.md)."""
    return any(image.get("status") == "rejected" for image in result.get("images", ()))


def _suspicion_thresholds(result: dict[str, Any]) -> dict[str, float]:
    """The ``intermediate`` and ``high`` suspicion thresholds a result was made with, those it
    records."""
    risk = (result.get("model") or {}).get("risk") or {}
    recorded = risk.get("suspicion_thresholds") or {}
    return {
        name: float(recorded[name])
        for name in ("intermediate", "high")
        if recorded.get(name) is not None
    }


def _at_shown(
    metrics: StudyMetrics, shown: Sequence[float], truth: Sequence[int], thresholds: Sequence[float]
) -> StudyMetrics:
    """``metrics`` with its metrics at ``thresholds`` taken on ``shown``, the rounded
    probabilities of its studies."""
    return replace(
        metrics, at_thresholds=tuple(metrics_at_threshold(shown, truth, t) for t in thresholds)
    )
