"""mini-MIAS adapter (Suckling et al. 1994, the MIAS MiniMammographic Database).

Layout: ``mdbNNN.png`` (or ``.pgm``) 1024×1024 8-bit MLO films at 200 µm plus ``Info.txt``
with one row per abnormality: reference, background tissue (F/G/D), class, severity (B/M),
x, y, radius. Quirks handled here, from the database's own README:

* y is measured from the BOTTOM-left corner, so the row is ``1024 - y``;
* odd reference numbers are right breasts, even ones left, in patient pairs (001/002 …);
* some rows have no coordinates (``mdb059``, the ``*NOTE 3*`` calcification rows): the image is
  abnormal but the lesion cannot be localised (``fully_localised=False``);
* several rows per image; trailing spaces.

Licence: research use only. Read the images from where the user keeps them; never copy them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mammocad.datasets.breast_labels import BreastLabel
from mammocad.datasets.records import AnnotatedImage, LesionAnnotation
from mammocad.datasets.samples import make_sample, prepare_samples
from mammocad.errors import PreprocessError
from mammocad.io import read_raster
from mammocad.preprocess import PreprocessParams
from mammocad.structures import FindingLabel, Image, Laterality, ViewPosition
from mammocad.train.data import DetectionSample

MIAS_SIZE = 1024
SOURCE = "mini-mias"

CLASS_LABELS = {
    "CALC": FindingLabel.CALCIFICATION,
    "CIRC": FindingLabel.MASS,
    "SPIC": FindingLabel.MASS,
    "MISC": FindingLabel.MASS,
    "ARCH": FindingLabel.ARCHITECTURAL_DISTORTION,
    "ASYM": FindingLabel.ASYMMETRY,
}
#: What mini-MIAS radiologists marked. Skin thickening, lymph nodes and the nipple are not
#: marked, so they are unknown (not background) on these images.
ANNOTATED_LABELS = frozenset(label.value for label in CLASS_LABELS.values())
DENSITY = {"F": "fatty", "G": "fatty-glandular", "D": "dense-glandular"}
#: Calcification rows give the radius of the whole cluster; a cluster smaller than this is
#: still boxed at this size so a detector has context around the specks.
MIN_RADIUS = 8


def _parse_rows(info: Path) -> dict[str, list[list[str]]]:
    rows: dict[str, list[list[str]]] = defaultdict(list)
    for line in info.read_text(encoding="ascii", errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].startswith("mdb") and fields[0][3:].isdigit():
            rows[fields[0]].append(fields)
    return rows


@dataclass(frozen=True, slots=True)
class ImageLabel:
    """Film-level truth from ``Info.txt``: any abnormality listed, any with severity M. Unlike
    the lesion boxes it needs no coordinates, so the unlocated rows count too."""

    abnormal: bool
    malignant: bool


def image_labels(root: Path) -> dict[str, ImageLabel]:
    """Film-level labels of every reference in ``root/Info.txt``."""
    return {
        ref: ImageLabel(
            abnormal=any(fields[2] != "NORM" for fields in rows),
            malignant=any(len(fields) > 3 and fields[3] == "M" for fields in rows),
        )
        for ref, rows in _parse_rows(root / "Info.txt").items()
    }


def breast_labels(info: Path) -> Iterator[BreastLabel]:
    """``Info.txt`` as breast labels for ``mammocad eval study --dataset-labels``: one per film,
    keyed by its reference (the file name), malignant when a row of it has severity M;
    patients are the reference pairs, grouped by background tissue.

    Raises:
        ValueError: the file cannot be read or has no ``mdbNNN`` row.
    """
    try:
        rows = _parse_rows(info)
    except OSError as error:
        raise ValueError(f"{info}: {error.strerror or error}") from None
    if not rows:
        raise ValueError(f"{info} has no mdbNNN row: it is not mini-MIAS's Info.txt")
    for ref, fields in sorted(rows.items()):
        yield BreastLabel(
            patient_id=_patient_of(ref),
            laterality=_side_of(ref),
            malignant=any(len(row) > 3 and row[3] == "M" for row in fields),
            group=DENSITY.get(fields[0][1]),
            image_id=ref,
        )


def _patient_of(ref: str) -> str:
    return f"mias-{(int(ref[3:]) + 1) // 2:03d}"  # odd/even pairs: 001 and 002 are one woman


def _side_of(ref: str) -> Laterality:
    return Laterality.R if int(ref[3:]) % 2 else Laterality.L


def _lesion(fields: list[str], ref: str, k: int) -> LesionAnnotation | None:
    label = CLASS_LABELS.get(fields[2])
    if label is None or len(fields) < 7 or not all(f.isdigit() for f in fields[4:7]):
        return None
    x, y, radius = (float(v) for v in fields[4:7])
    row = MIAS_SIZE - y
    radius = max(radius, MIN_RADIUS)
    box = (
        max(0.0, x - radius),
        max(0.0, row - radius),
        min(float(MIAS_SIZE), x + radius),
        min(float(MIAS_SIZE), row + radius),
    )
    malignant = {"M": True, "B": False}.get(fields[3]) if len(fields) > 3 else None
    return LesionAnnotation(label=label, box=box, malignant=malignant, lesion_id=f"{ref}-{k}")


def _image_path(root: Path, ref: str) -> Path | None:
    for suffix in (".png", ".pgm"):
        path = root / f"{ref}{suffix}"
        if path.is_file():
            return path
    return None


def _info_rows(root: Path) -> dict[str, list[list[str]]]:
    info = root / "Info.txt"
    if not info.is_file():
        raise FileNotFoundError(
            f"{info} not found: point the adapter at the mini-MIAS folder holding Info.txt"
        )
    return _parse_rows(info)


def _located(ref: str, rows: list[list[str]]) -> tuple[tuple[LesionAnnotation, ...], bool]:
    """A film's lesions with coordinates, and whether they are all its abnormalities."""
    lesions = [_lesion(fields, ref, k) for k, fields in enumerate(rows)]
    located = tuple(lesion for lesion in lesions if lesion is not None)
    return located, len(located) == sum(fields[2] != "NORM" for fields in rows)


def film_lesions(root: Path) -> dict[str, tuple[tuple[LesionAnnotation, ...], bool]]:
    """Every film ``root/Info.txt`` lists, picture or not: its located lesions (original
    pixels) and whether they are all its abnormalities. For truth about films analysed from
    wherever they are kept, which :func:`load_mias` (films with their picture) would miss."""
    return {ref: _located(ref, rows) for ref, rows in sorted(_info_rows(root).items())}


def load_mias(root: Path) -> list[AnnotatedImage]:
    """Every image of a mini-MIAS folder that has both a picture and an ``Info.txt`` row."""
    records = []
    for ref, rows in sorted(_info_rows(root).items()):
        path = _image_path(root, ref)
        if path is None:
            continue
        located, fully_localised = _located(ref, rows)
        records.append(
            AnnotatedImage(
                path=path,
                image_id=ref,
                patient_id=_patient_of(ref),
                source=SOURCE,
                laterality=_side_of(ref),
                view=ViewPosition.MLO,
                lesions=located,
                annotated_labels=ANNOTATED_LABELS,
                fully_localised=fully_localised,
                density=DENSITY.get(rows[0][1]),
            )
        )
    return records


#: mini-MIAS films were digitised at 200 µm and reduced to 1024×1024 at this pixel size.
PIXEL_SPACING_MM = 0.2


def read_record(record: AnnotatedImage) -> Image:
    """The record's picture as an :class:`Image`, laterality and view from the adapter."""
    return read_raster(
        record.path,
        laterality=record.laterality,
        view=record.view,
        patient_id=record.patient_id,
        sop_instance_uid=None,
        pixel_spacing_mm=PIXEL_SPACING_MM,
    )


def _record_samples(
    record: AnnotatedImage, classes: Sequence[str], params: PreprocessParams
) -> list[DetectionSample]:
    """The record's sample, or none when it cannot be one (see :func:`mias_samples`)."""
    if not record.fully_localised:
        return []
    image = read_record(record)
    if not image.is_processed:
        return []
    try:
        return [
            make_sample(
                image,
                image_id=record.image_id,
                source=SOURCE,
                lesions=record.lesions,
                nipple=None,
                annotated=record.annotated_labels,
                classes=classes,
                params=params,
            )
        ]
    except PreprocessError:
        return []


def mias_samples(
    records: Sequence[AnnotatedImage],
    *,
    classes: Sequence[str],
    params: PreprocessParams,
    workers: int = 1,
) -> Iterator[DetectionSample]:
    """Training samples of the records whose abnormalities are all localised, in record
    order; ``workers`` processes read and preprocess them.

    An image with an abnormality that has no coordinates is left out: it is neither a
    lesion-free image nor a usable positive.
    """
    return prepare_samples(
        _record_samples, records, classes=classes, params=params, workers=workers
    )


def patient_folds(records: Sequence[AnnotatedImage], *, folds: int, seed: int = 0) -> list[int]:
    """Fold index per record; both breasts of a patient always share a fold."""
    patients = sorted({record.patient_id for record in records})
    order = np.random.default_rng(seed).permutation(len(patients))
    fold_of = {patients[i]: rank % folds for rank, i in enumerate(order)}
    return [fold_of[record.patient_id] for record in records]
