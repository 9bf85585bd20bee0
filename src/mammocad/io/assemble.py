"""Files, folders and zip archives → :class:`~mammocad.structures.Study` objects.

Rules (docs/ingestion.md has the long form):

* Headers first: every input is scanned without pixels (:mod:`mammocad.io.scan`), grouped, and
  only then decoded, one study at a time, so a batch never holds more than one study's pixels.
* Grouping: by StudyInstanceUID (``group_by="study"``, the default), or by patient
  (``group_by="patient"``: PatientID with CBIS-DDSM's ``_LEFT_CC`` style suffix removed, which
  becomes the study's ``patient_id``), for collections such as CBIS-DDSM that give every view
  its own study; images without a PatientID join the patient of the other images of their
  study (a study is one patient's: PS3.3 Section 7, the DICOM model of the real world), else
  keep their StudyInstanceUID group. A group holding only part of a study (its images name
  several patients) gets a UID of its own, so that no two studies share one.
* Order: studies in order of first appearance among the sorted inputs; images within a study by
  laterality (R, L, unknown), then view (CC, MLO, ML, LM, XCCL, XCCM, SIO, AT, OTHER,
  unknown), then SOP Instance UID.
* Of several files with one SOPInstanceUID only one is decoded: the largest (a copy cut short
  in transfer is smaller than the whole one, and must not push it out), else the first. Each
  other copy becomes a rejected image (``duplicate_instance``) in ``unassigned`` and the study
  gets a warning message. Where the copy read is rejected for a fault of its file
  (:data:`FILE_FAULTS`: damaged, cut short, mislabelled), the other copies are read in turn,
  larger first, until one is not; the rejected copies take their places in ``unassigned``.
* Each missing standard view (CC and MLO of each breast) is a ``missing_view`` warning.
* Every input ends up exactly once: as an image of a study, or in ``unassigned`` (not DICOM,
  unreadable, no UIDs, duplicates) — see :meth:`IngestResult.images`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum

from pydicom.uid import generate_uid

from mammocad.errors import RejectionCode
from mammocad.io.dicom import read_dicom
from mammocad.io.naming import patient_key
from mammocad.io.options import DEFAULT_OPTIONS, ReadOptions
from mammocad.io.raster import read_raster
from mammocad.io.scan import Entry, scan_source
from mammocad.io.sources import FileKind, collect_sources
from mammocad.structures import Image, Laterality, Message, Severity, Study, ViewPosition

Inputs = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
_SIDE_ORDER = {Laterality.R: 0, Laterality.L: 1}
_VIEW_ORDER = {view: rank for rank, view in enumerate(ViewPosition)}
_SIDE_NAMES = {Laterality.L: "left", Laterality.R: "right"}
#: lateral views fusion reads as a breast's MLO where it has none (mammocad.fuse.geometry)
_STAND_IN_FOR_MLO = (ViewPosition.ML, ViewPosition.LM)
#: rejections for a fault of the file itself (damaged, cut short, mislabelled pixel data): another
#: copy of the same SOP Instance UID may be whole, so it is read instead. Not here:
#: not_mammography, for_processing and multi_frame say what the instance is (its SOP Class,
#: Modality, Presentation Intent, frames), which every copy of it shares: another copy would
#: only be rejected alike, at the cost of one more read.
FILE_FAULTS = frozenset(
    {
        RejectionCode.NOT_DICOM,
        RejectionCode.UNREADABLE,
        RejectionCode.NO_PIXEL_DATA,
        RejectionCode.UNSUPPORTED_TRANSFER_SYNTAX,
        RejectionCode.DECODE_FAILED,
        RejectionCode.TRUNCATED_PIXEL_DATA,
        RejectionCode.UNSUPPORTED_PIXEL_FORMAT,
        RejectionCode.MISSING_METADATA,
    }
)


class GroupBy(StrEnum):
    """How images are grouped into studies."""

    STUDY = "study"
    PATIENT = "patient"


@dataclass(frozen=True, slots=True)
class _Spare:
    """A copy of an entry's SOP Instance UID that was not chosen, and its place in
    ``unassigned``."""

    entry: Entry
    slot: int


@dataclass(slots=True)
class _Group:
    key: str
    entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    #: by SOP Instance UID of an entry: its other copies, larger first, read in its place when
    #: it is rejected for a fault of its file
    spares: dict[str, list[_Spare]] = field(default_factory=dict)
    #: other groups hold images of its study too: it must not take the study's UID
    partial: bool = False


def _group_key(entry: Entry, group_by: GroupBy, patients: dict[str, set[str]]) -> str:
    """``patients``: the patient keys named by the images of each StudyInstanceUID."""
    if group_by is GroupBy.PATIENT:
        patient = patient_key(entry.preview.patient_id)
        named = patients.get(entry.study_instance_uid, set())
        if patient is None and len(named) == 1:  # the patient of the rest of its study
            (patient,) = named
        if patient:
            return f"patient:{patient}"
    return f"study:{entry.study_instance_uid}"


def _study_patients(scanned: list[Entry | Image]) -> dict[str, set[str]]:
    patients: dict[str, set[str]] = defaultdict(set)
    for entry in scanned:
        if isinstance(entry, Entry) and (key := patient_key(entry.preview.patient_id)):
            patients[entry.study_instance_uid].add(key)
    return patients


def _duplicate(entry: Entry, kept: Entry) -> tuple[Image, Message]:
    """``entry`` skipped unread as a copy of ``kept`` (its preview stays as it was: the copy
    may be read after all, or skipped for another copy, see :meth:`StudyStream._fall_back`)."""
    larger = " (the larger file)" if kept.source.size > entry.source.size else ""
    text = (
        f"{entry.source.name} repeats SOPInstanceUID {entry.sop_instance_uid} of "
        f"{kept.source.name}{larger}, which is read instead; this copy was skipped."
    )
    image = replace(entry.preview, messages=list(entry.preview.messages))
    image.reject(RejectionCode.DUPLICATE, text)
    return image, _duplicate_note(entry.sop_instance_uid, text)


def _duplicate_note(uid: str, text: str) -> Message:
    return Message(
        code=RejectionCode.DUPLICATE.value,
        severity=Severity.WARNING,
        text=text,
        sop_instance_uid=uid,
    )


def _code(image: Image) -> str:
    return image.rejection_code.value if image.rejection_code else "processed"


def _add_to_rejection(image: Image, sentence: str) -> None:
    """Append ``sentence`` to the rejection text of ``image`` (and to its rejection message)."""
    old = image.rejection_text
    image.rejection_text = f"{old} {sentence}"
    image.messages = [
        replace(m, text=image.rejection_text)
        if m.severity is Severity.ERROR and m.text == old
        else m
        for m in image.messages
    ]


def _plan(
    inputs: Inputs, group_by: GroupBy, options: ReadOptions
) -> tuple[list[_Group], list[Image]]:
    """Header pass: groups of entries (first-appearance order) and unassigned rejections."""
    paths = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    sources, unassigned = collect_sources(paths)
    everything = [scan_source(source, options) for source in sources]
    patients = _study_patients(everything)
    groups: dict[str, _Group] = {}
    seen: dict[str, Entry] = {}
    copies: dict[str, list[_Spare]] = defaultdict(list)
    for scanned in everything:
        if isinstance(scanned, Image):
            unassigned.append(scanned)
            continue
        key = _group_key(scanned, group_by, patients)
        group = groups.setdefault(key, _Group(key=key))
        kept = seen.get(scanned.sop_instance_uid)
        if kept is not None and scanned.source.size > kept.source.size:
            # the copy met first is the shorter one, likely cut short: read this one instead
            groups[_group_key(kept, group_by, patients)].entries.remove(kept)
            seen[scanned.sop_instance_uid] = scanned
            group.entries.append(scanned)
            scanned, kept = kept, scanned
        if kept is not None:
            copies[scanned.sop_instance_uid].append(_Spare(scanned, len(unassigned)))
            unassigned.append(scanned.preview)  # its duplicate_instance rejection, below
            continue
        seen[scanned.sop_instance_uid] = scanned
        group.entries.append(scanned)
    for uid, spares in copies.items():  # now that the copy to read is known
        kept = seen[uid]
        holder = groups[_group_key(kept, group_by, patients)]
        for spare in spares:
            unassigned[spare.slot], note = _duplicate(spare.entry, kept)
            holder.messages.append(note)
        # sorted is stable: of copies of one size, the first met is read first
        holder.spares[uid] = sorted(spares, key=lambda spare: -spare.entry.source.size)
    kept_groups = [group for group in groups.values() if group.entries]
    if group_by is GroupBy.STUDY:
        _note_split_patients(kept_groups)
    else:
        _note_split_studies(kept_groups)
    return kept_groups, unassigned


#: message code of a group holding part of a study whose images name several patients
SPLIT_STUDY = "split_study"


def _note_split_studies(groups: list[_Group]) -> None:
    """Mark the groups of a study whose images went to several patients: each would take the
    study's UID, and the results of one replace the other's (folders, archive entries)."""
    holders: dict[str, list[_Group]] = defaultdict(list)
    for group in groups:
        for uid in {entry.study_instance_uid for entry in group.entries}:
            holders[uid].append(group)
    for uid, shared in holders.items():
        if len(shared) < 2:
            continue
        for group in shared:
            group.partial = True
            group.messages.append(
                Message(
                    code=SPLIT_STUDY,
                    severity=Severity.WARNING,
                    text=(
                        f"The images of study {uid} name different patients (Patient ID), so "
                        f"they were read as {len(shared)} studies, by patient, each under a "
                        "Study Instance UID of its own: check the Patient IDs of that study."
                    ),
                )
            )


#: message code of a study of fewer than four images whose patient has other studies among
#: the inputs
SPLIT_PATIENT = "same_patient_studies"


def _note_split_patients(groups: list[_Group]) -> None:
    """An info message on each study of fewer than four images whose patient has other studies
    among the inputs: CBIS-DDSM stores each view as a study of its own, and read by study its
    views are four one-image studies without CC–MLO linking or a study probability."""
    by_patient: dict[str, list[_Group]] = defaultdict(list)
    for group in groups:
        keys = {patient_key(entry.preview.patient_id) for entry in group.entries}
        for key in keys - {None}:
            by_patient[str(key)].append(group)
    for patient, shared in by_patient.items():
        if len(shared) < 2:
            continue
        for group in shared:
            if len(group.entries) >= 4:  # a full examination of its own (priors, say)
                continue
            others = len(shared) - 1
            group.messages.append(
                Message(
                    code=SPLIT_PATIENT,
                    severity=Severity.INFO,
                    text=(
                        f"Patient {patient} has {others} other "
                        f"{'study' if others == 1 else 'studies'} among the inputs. If they "
                        "hold other views of the same examination (CBIS-DDSM stores each view "
                        "as a study of its own), read them as one study with `mammocad "
                        "analyze --group-by patient`."
                    ),
                )
            )


def _read_entry(entry: Entry, options: ReadOptions) -> Image:
    if entry.kind is FileKind.RASTER:
        return read_raster(entry.source, options=options)
    return read_dicom(entry.source, options=options)


def _sort_key(image: Image) -> tuple[int, int, str]:
    side = _SIDE_ORDER.get(image.laterality, 2) if image.laterality else 2
    view = _VIEW_ORDER[image.view] if image.view else len(_VIEW_ORDER)
    return side, view, image.key


def missing_view_messages(study: Study) -> list[Message]:
    """One ``missing_view`` warning per standard view with no processed image; where a breast
    has processed images that do not say their view (a bare PNG), one warning for that
    breast instead, saying so: its CC and MLO are not absent but unknown."""
    messages = []
    missing = study.missing_standard_views()
    for side in Laterality:
        views = [view for missing_side, view in missing if missing_side is side]
        unknown = [
            image
            for image in study.processed_images()
            if image.laterality is side and image.view is None
        ]
        if views and unknown:
            messages.append(_unknown_view_message(side, len(unknown), views))
            continue
        messages.extend(_missing_view_message(study, side, view) for view in views)
    return messages


def _missing_view_message(study: Study, side: Laterality, view: ViewPosition) -> Message:
    rejected = [
        image
        for image in study.images
        if not image.is_processed and image.laterality is side and image.view is view
    ]
    breast = _SIDE_NAMES[side]
    code = rejected[0].rejection_code if rejected else None
    if code is not None:
        why = f"The {breast} {view.value} image was rejected ({code.value})"
    else:
        why = f"No {breast} {view.value} image in this study"
    lateral = [
        image.view.value
        for image in study.processed_images()
        if image.laterality is side and image.view in _STAND_IN_FOR_MLO
    ]
    if view is ViewPosition.MLO and lateral:
        # INbreast's file names, for one, write its MLO views as "ML"
        text = (
            f"{why}: its {lateral[0]} image is read in its place (a 90° lateral view, not the "
            "screening MLO); if that image is an MLO, give View Position MLO."
        )
    elif any(image.laterality is side for image in study.processed_images()):
        text = f"{why}: the {breast} breast is read without it; add the view if it exists."
    else:  # a mastectomy, a breast not sent, or every image of it rejected
        text = (
            f"{why}: the {breast} breast is not read, no image of it could be; add or resend "
            "its views if they exist."
        )
    return Message(code="missing_view", severity=Severity.WARNING, text=text)


def _unknown_view_message(side: Laterality, count: int, views: list[ViewPosition]) -> Message:
    breast = _SIDE_NAMES[side]
    images = "image does" if count == 1 else f"{count} images do"
    text = (
        f"The {breast} breast's {images} not say the view (no View Position or view code, "
        f"none in the file name), so its {' and '.join(v.value for v in views)} "
        f"{'counts' if len(views) == 1 else 'count'} as missing and the views are not "
        'compared: give the view (DICOM View Position, or "view" in a sidecar '
        "<image>.json) if it is known."
    )
    return Message(code="missing_view", severity=Severity.WARNING, text=text)


def _study_uid(group: _Group, images: list[Image]) -> tuple[str, list[Message]]:
    uids = sorted({image.study_instance_uid for image in images if image.study_instance_uid})
    if len(uids) == 1 and not group.partial:
        return uids[0], []
    # group_by=patient over several studies, or over part of one: a stable UID of its own
    merged = generate_uid(entropy_srcs=["mammocad merged study", group.key])
    if len(uids) == 1:
        return merged, []  # the group's split_study warning says why
    note = Message(
        code="merged_studies",
        severity=Severity.INFO,
        text=f"Images of {len(uids)} studies of the same patient were read as one study.",
    )
    return merged, [note]


def _build_study(group: _Group, images: list[Image], messages: list[Message]) -> Study:
    images = sorted(images, key=_sort_key)
    uid, notes = _study_uid(group, images)
    patient = group.key.removeprefix("patient:") if group.key.startswith("patient:") else None
    study = Study(
        study_instance_uid=uid,
        patient_id=patient or next((i.patient_id for i in images if i.patient_id), None),
        accession_number=next((i.accession_number for i in images if i.accession_number), None),
        images=images,
        messages=[*messages, *notes],
    )
    study.messages.extend(missing_view_messages(study))
    return study


class StudyStream:
    """Decoded studies, one at a time, after a header pass over all inputs.

    ``unassigned`` (rejected images of files that belong to no study) and ``len()`` are known
    as soon as the stream is built, before any pixel is decoded. Each iteration decodes again.
    """

    def __init__(
        self, *, groups: list[_Group], unassigned: list[Image], options: ReadOptions, workers: int
    ) -> None:
        self._groups = groups
        self.unassigned = unassigned
        self._options = options
        self._workers = workers

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self) -> Iterator[Study]:
        if self._workers <= 1:
            for group in self._groups:
                yield self._study(group, [_read_entry(e, self._options) for e in group.entries])
            return
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            for group in self._groups:
                images = list(pool.map(lambda e: _read_entry(e, self._options), group.entries))
                yield self._study(group, images)

    def _study(self, group: _Group, images: list[Image]) -> Study:
        messages = list(group.messages)
        for position, (entry, image) in enumerate(zip(group.entries, images, strict=True)):
            spares = group.spares.get(entry.sop_instance_uid)
            if spares and image.rejection_code in FILE_FAULTS:
                images[position] = self._fall_back(entry, image, spares, messages)
        return _build_study(group, images, messages)

    def _fall_back(
        self, entry: Entry, image: Image, spares: list[_Spare], messages: list[Message]
    ) -> Image:
        """``image``, the copy of its SOP Instance UID chosen to be read, was rejected for a
        fault of its file: read the other copies, larger first, until one is not. That one is
        the study's image; each copy read and rejected takes the place in ``unassigned`` of a
        copy read after it, with its own rejection; copies still unread stay skipped, as copies
        of the one read. ``messages``' notes on the copies are rewritten to say so."""
        uid = entry.sop_instance_uid
        tried = [(entry, image)]
        read: Image | None = None
        for spare in spares:
            read = _read_entry(spare.entry, self._options)
            if read.rejection_code not in FILE_FAULTS:
                break
            tried.append((spare.entry, read))
        messages[:] = [
            m
            for m in messages
            if m.code != RejectionCode.DUPLICATE.value or m.sop_instance_uid != uid
        ]
        if len(tried) > len(spares):  # every copy rejected: the one chosen stands for the image
            names = ", ".join(f"{e.source.name} ({_code(i)})" for e, i in tried)
            for spare, (_, rejected) in zip(spares, tried[1:], strict=True):
                _add_to_rejection(
                    rejected, f"Every copy of this SOPInstanceUID was rejected: {names}."
                )
                self.unassigned[spare.slot] = rejected
            text = (
                f"SOPInstanceUID {uid} is in {len(tried)} files, each rejected for a fault of its "
                f"file: {names}; copy or export the image again."
            )
            messages.append(_duplicate_note(uid, text))
            return image
        assert read is not None  # the loop ran: there is a spare
        chosen = spares[len(tried) - 1].entry
        for spare, (_, rejected) in zip(spares, tried, strict=False):
            sentence = (
                f"Another copy of this SOPInstanceUID, {chosen.source.name}, was read instead."
            )
            _add_to_rejection(rejected, sentence)
            self.unassigned[spare.slot] = rejected
        files = " and ".join(
            e.source.name + (" (the larger file)" if e.source.size > chosen.source.size else "")
            for e, _ in tried
        )
        text = (
            f"{chosen.source.name} repeats SOPInstanceUID {uid} of {files}, which "
            f"{'was' if len(tried) == 1 else 'were'} read first and rejected "
            f"({', '.join(_code(i) for _, i in tried)}); this copy was read instead."
        )
        messages.append(_duplicate_note(uid, text))
        for spare in spares[len(tried) :]:  # not read: copies of the one that was
            skipped, note = _duplicate(spare.entry, chosen)
            self.unassigned[spare.slot] = skipped
            messages.append(note)
        return read


def iter_studies(
    inputs: Inputs,
    *,
    group_by: GroupBy | str = GroupBy.STUDY,
    options: ReadOptions = DEFAULT_OPTIONS,
    workers: int = 1,
) -> StudyStream:
    """Scan ``inputs`` (files, folders, zip archives) and return a stream of studies.

    Args:
        inputs: one path or several.
        group_by: ``"study"`` (StudyInstanceUID) or ``"patient"`` (see module docstring).
        options: reading settings for every image.
        workers: threads decoding the images of one study; imagecodecs releases the GIL, so 2
            helps on two cores for JPEG-LS / JPEG Lossless (JPEG 2000 already uses threads).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    groups, unassigned = _plan(inputs, GroupBy(group_by), options)
    return StudyStream(groups=groups, unassigned=unassigned, options=options, workers=workers)


@dataclass(slots=True, kw_only=True)
class IngestResult:
    """All studies of a batch, decoded, and the files that belong to none."""

    studies: list[Study]
    unassigned: list[Image]

    def images(self) -> Iterator[Image]:
        """Every input file exactly once: the studies' images, then the unassigned."""
        for study in self.studies:
            yield from study.images
        yield from self.unassigned


def load_studies(
    inputs: Inputs,
    *,
    group_by: GroupBy | str = GroupBy.STUDY,
    options: ReadOptions = DEFAULT_OPTIONS,
    workers: int = 1,
) -> IngestResult:
    """:func:`iter_studies`, all decoded at once (fine for a few studies; a batch should
    iterate)."""
    stream = iter_studies(inputs, group_by=group_by, options=options, workers=workers)
    return IngestResult(studies=list(stream), unassigned=stream.unassigned)
