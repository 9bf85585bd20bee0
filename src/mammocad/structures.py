"""Typed containers passed between the pipeline stages.

Coordinate frames, everywhere in mammocad:

* **original** — the stored pixel grid of the source image: column ``x``, row ``y``, origin at the
  top-left corner of the top-left pixel, so pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)``.
  Boxes are ``[x1, y1, x2, y2]`` with ``x1 < x2`` and ``y1 < y2``. Everything a user sees is here.
* **input** — the model input produced by :mod:`mammocad.preprocess`: mirrored so the chest wall
  is on the left, cropped to the breast, resized, padded right/bottom. :class:`Transform` maps
  between the two exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePath

import numpy as np
import numpy.typing as npt

from mammocad.errors import RejectionCode

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


class Laterality(str, Enum):
    """Breast side, as in Image Laterality (0020,0062), DICOM PS3.3 C.8.11.7."""

    L = "L"
    R = "R"


class ViewPosition(str, Enum):
    """Mammography projection, the values of View Position (0018,5101) for MG, PS3.3 C.8.11.7.

    ``OTHER`` stands for any projection outside this list (e.g. magnification or spot views
    recorded only by a modifier).
    """

    CC = "CC"
    MLO = "MLO"
    ML = "ML"
    LM = "LM"
    XCCL = "XCCL"
    XCCM = "XCCM"
    SIO = "SIO"
    AT = "AT"
    OTHER = "OTHER"


class TagSource(str, Enum):
    """Where laterality or view came from (the schema's ``laterality_source``, ``view_source``)."""

    IMAGE_LATERALITY = "ImageLaterality"
    LATERALITY = "Laterality"
    VIEW_POSITION = "ViewPosition"
    VIEW_CODE_SEQUENCE = "ViewCodeSequence"
    IMAGE = "image"
    FILENAME = "filename"
    OTHER = "other"


class PresentationIntent(str, Enum):
    """Presentation Intent Type (0008,0068), PS3.3 C.8.11.7: only FOR PRESENTATION is read."""

    FOR_PRESENTATION = "FOR PRESENTATION"
    FOR_PROCESSING = "FOR PROCESSING"


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class ImageStatus(str, Enum):
    PROCESSED = "processed"
    REJECTED = "rejected"


class StudyStatus(str, Enum):
    """``complete``: CC and MLO of both breasts processed; ``partial``: something processed but a
    standard view is missing or rejected; ``rejected``: nothing processed."""

    COMPLETE = "complete"
    PARTIAL = "partial"
    REJECTED = "rejected"


class FindingLabel(str, Enum):
    """Lesion classes reported as findings. The nipple is a landmark, never a finding."""

    MASS = "mass"
    CALCIFICATION = "calcification"
    ARCHITECTURAL_DISTORTION = "architectural_distortion"
    ASYMMETRY = "asymmetry"
    SKIN_THICKENING = "skin_thickening"
    LYMPH_NODE = "lymph_node"


STANDARD_VIEWS = (ViewPosition.CC, ViewPosition.MLO)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A coded, human-readable note attached to a study, an image or a quality check.

    ``code`` is snake_case and stable (tests and clients match on it); ``text`` is one sentence
    saying what happened and, for warnings and errors, what to do.
    """

    code: str
    severity: Severity
    text: str
    sop_instance_uid: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "text": self.text,
            "sop_instance_uid": self.sop_instance_uid,
        }


#: Height a mammogram without Pixel Spacing (a PNG, a digitised film) is taken to cover: a
#: typical 24 cm detector or film. mini-MIAS (1024 rows at 0.2 mm: 205 mm) and CBIS-DDSM
#: (about 4600 rows digitised at 43.5–50 µm: 200–230 mm) come within 15 %.
ASSUMED_FIELD_MM = 235.0


@dataclass(slots=True, kw_only=True)
class Image:
    """One mammogram as read by :mod:`mammocad.io`, on its original grid.

    ``pixels`` is ``float32[rows, columns]`` in ``[0, 1]`` after the full display pipeline
    (Modality LUT → VOI LUT → MONOCHROME1 / INVERSE inversion): 0 is black (background, fat),
    1 is white (dense tissue, calcium), as a radiologist sees it. ``pixels`` is ``None`` for a
    rejected file. ``padding_mask`` marks Pixel Padding Value pixels (True = padding).
    """

    source: str | None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    patient_id: str | None = None
    accession_number: str | None = None
    laterality: Laterality | None = None
    laterality_source: TagSource | None = None
    view: ViewPosition | None = None
    view_source: TagSource | None = None
    rows: int = 0
    columns: int = 0
    pixel_spacing_mm: tuple[float, float] | None = None
    manufacturer: str | None = None
    #: Breast Implant Present (0028,1300): True for YES, False for NO, None when not said
    implant_present: bool | None = None
    transfer_syntax_uid: str | None = None
    pixels: FloatArray | None = None
    padding_mask: BoolArray | None = None
    status: ImageStatus = ImageStatus.PROCESSED
    rejection_code: RejectionCode | None = None
    rejection_text: str | None = None
    messages: list[Message] = field(default_factory=list)

    @property
    def spacing_or_assumed_mm(self) -> tuple[float, float]:
        """Pixel spacing (row, column) in mm: the file's, or for a file without one (a PNG)
        its height taken as :data:`ASSUMED_FIELD_MM`, square pixels."""
        if self.pixel_spacing_mm is not None:
            return self.pixel_spacing_mm
        spacing = ASSUMED_FIELD_MM / self.rows if self.rows > 0 else 0.1
        return (spacing, spacing)

    @property
    def key(self) -> str:
        """SOPInstanceUID, or the file name stem when the file has none (PNG, PGM)."""
        if self.sop_instance_uid:
            return self.sop_instance_uid
        if self.source:
            name = PurePath(self.source).name
            for suffix in (".dcm", ".dicom", ".png", ".pgm", ".tif", ".tiff", ".jpg", ".jpeg"):
                if name.lower().endswith(suffix):
                    return name[: -len(suffix)]
            return name
        raise ValueError("an image needs a SOPInstanceUID or a source file name to be keyed")

    def reject(self, code: RejectionCode, text: str, *, keep_pixels: bool = False) -> None:
        """Mark the image rejected; its identifiers are kept, its pixels dropped unless
        ``keep_pixels`` (an image refused for its quality is still drawn, with the reason)."""
        self.status = ImageStatus.REJECTED
        self.rejection_code = code
        self.rejection_text = text
        if not keep_pixels:
            self.pixels = None
            self.padding_mask = None
        self.messages.append(
            Message(
                code=code.value,
                severity=Severity.ERROR,
                text=text,
                sop_instance_uid=self.sop_instance_uid,
            )
        )

    @property
    def is_processed(self) -> bool:
        return self.status is ImageStatus.PROCESSED


@dataclass(slots=True, kw_only=True)
class Study:
    """The images of one StudyInstanceUID (plus the files that could not be assigned to one)."""

    study_instance_uid: str
    patient_id: str | None = None
    accession_number: str | None = None
    images: list[Image] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    def processed_images(self) -> Iterator[Image]:
        return (image for image in self.images if image.is_processed)

    def breast(self, laterality: Laterality) -> list[Image]:
        """The processed images of one breast."""
        return [image for image in self.processed_images() if image.laterality is laterality]

    def missing_standard_views(self) -> list[tuple[Laterality, ViewPosition]]:
        """Standard screening views (CC, MLO of each breast) with no processed image."""
        present = {(image.laterality, image.view) for image in self.processed_images()}
        return [
            (side, view)
            for side in Laterality
            for view in STANDARD_VIEWS
            if (side, view) not in present
        ]

    @property
    def status(self) -> StudyStatus:
        if not any(True for _ in self.processed_images()):
            return StudyStatus.REJECTED
        return StudyStatus.PARTIAL if self.missing_standard_views() else StudyStatus.COMPLETE


@dataclass(frozen=True, slots=True, kw_only=True)
class Transform:
    """Exact map between original pixels and model-input pixels.

    original --(mirror about the vertical centre line, if ``flipped``)--> mirrored
    --(crop ``crop_box`` = [x0, y0, x1, y1) of the mirrored grid)--> cropped
    --(scale by ``scale_x``, ``scale_y``)--> input (content at the top-left; padding right and
    bottom up to ``input_size``).

    All maps act on continuous pixel-edge coordinates (see the module docstring), so a box
    edge goes to a box edge and ``to_original(to_input(p)) == p`` up to float rounding.
    """

    original_size: tuple[int, int]  # (rows, columns) of the original grid
    flipped: bool
    crop_box: tuple[int, int, int, int]  # [x0, y0, x1, y1) in the mirrored original grid
    scale_x: float
    scale_y: float
    input_size: tuple[int, int]  # (rows, columns) of the padded model input

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.crop_box
        rows, cols = self.original_size
        if not (0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows):
            raise ValueError(f"crop_box {self.crop_box} lies outside the {rows}x{cols} image")
        if self.scale_x <= 0 or self.scale_y <= 0:
            raise ValueError("scale factors must be positive")

    @property
    def content_size(self) -> tuple[int, int]:
        """(rows, columns) of the resized breast inside the padded input."""
        x0, y0, x1, y1 = self.crop_box
        return round((y1 - y0) * self.scale_y), round((x1 - x0) * self.scale_x)

    def points_to_input(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``float[N, 2]`` (x, y) original → input."""
        xy = np.array(points, dtype=np.float64).reshape(-1, 2)
        x0, y0, _, _ = self.crop_box
        x = self.original_size[1] - xy[:, 0] if self.flipped else xy[:, 0]
        return np.stack([(x - x0) * self.scale_x, (xy[:, 1] - y0) * self.scale_y], axis=1)

    def points_to_original(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``float[N, 2]`` (x, y) input → original."""
        xy = np.array(points, dtype=np.float64).reshape(-1, 2)
        x0, y0, _, _ = self.crop_box
        x = xy[:, 0] / self.scale_x + x0
        if self.flipped:
            x = self.original_size[1] - x
        return np.stack([x, xy[:, 1] / self.scale_y + y0], axis=1)

    def boxes_to_input(self, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``float[N, 4]`` ``[x1, y1, x2, y2]`` original → input (still ``x1 < x2``)."""
        return _map_boxes(boxes, self.points_to_input)

    def boxes_to_original(self, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``float[N, 4]`` ``[x1, y1, x2, y2]`` input → original (still ``x1 < x2``)."""
        return _map_boxes(boxes, self.points_to_original)

    def clip_to_content(self, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``float[N, 4]`` input boxes cut to the resized crop (the padding beyond it holds
        no image): a box that spills into the padding would map back outside the crop, and
        past the image's edge where the crop reaches it. A box wholly in the padding comes
        back empty (``x1 == x2`` or ``y1 == y2``)."""
        x0, y0, x1, y1 = self.crop_box
        cut = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        cut[:, [0, 2]] = cut[:, [0, 2]].clip(0.0, (x1 - x0) * self.scale_x)
        cut[:, [1, 3]] = cut[:, [1, 3]].clip(0.0, (y1 - y0) * self.scale_y)
        return cut

    def to_dict(self) -> dict[str, object]:
        return {
            "original_size": list(self.original_size),
            "flipped": self.flipped,
            "crop_box": list(self.crop_box),
            "scale_x": self.scale_x,
            "scale_y": self.scale_y,
            "input_size": list(self.input_size),
        }


def _map_boxes(
    boxes: npt.ArrayLike, map_points: Callable[[npt.ArrayLike], npt.NDArray[np.float64]]
) -> npt.NDArray[np.float64]:
    array = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    corners = map_points(array.reshape(-1, 2))
    corners = corners.reshape(-1, 2, 2)
    low = corners.min(axis=1)
    high = corners.max(axis=1)
    return np.concatenate([low, high], axis=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageQuality:
    """Fitness of one image for reading: ``score`` in [0, 1] (1 = good) and coded issues."""

    score: float
    acceptable: bool
    issues: tuple[Message, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "score": round(float(self.score), 4),
            "acceptable": self.acceptable,
            "issues": [issue.to_dict() for issue in self.issues],
        }


@dataclass(slots=True, kw_only=True)
class PreprocessedImage:
    """An :class:`Image` prepared for the model.

    ``input`` is ``float32[2, H, W]`` in ``[0, 1]``, chest wall on the left: channel 0 the display
    image, channel 1 the second contrast preparation (see :mod:`mammocad.preprocess.channels`).
    Masks are ``bool[rows, columns]`` on the ORIGINAL grid. ``breast_box`` and ``nipple`` are in
    original coordinates.
    """

    image: Image
    input: FloatArray
    transform: Transform
    tissue_mask: BoolArray
    pectoral_mask: BoolArray | None
    breast_box: tuple[float, float, float, float]
    nipple: tuple[float, float] | None
    chest_wall_on_right: bool  # in the ORIGINAL grid; True means the image was mirrored
    quality: ImageQuality
    messages: list[Message] = field(default_factory=list)

    @property
    def flipped(self) -> bool:
        return self.transform.flipped


@dataclass(slots=True, kw_only=True)
class Finding:
    """One suspicious lesion on one image; ``box`` ``[x1, y1, x2, y2]`` in ORIGINAL pixels."""

    id: str
    sop_instance_uid: str
    label: FindingLabel
    score: float
    malignancy_probability: float
    box: tuple[float, float, float, float]
    linked_finding_ids: list[str] = field(default_factory=list)
    #: the bundle's lesion ranker's P(malignant lesion here) (:mod:`mammocad.ranker`), written
    #: as ``x_malignant_lesion_probability``; ``None`` without a ranker
    malignant_lesion_probability: float | None = None

    def to_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "id": self.id,
            "label": self.label.value,
            "score": round(float(self.score), 4),
            "malignancy_probability": round(float(self.malignancy_probability), 2),
            "box": [round(float(v), 1) for v in self.box],
        }
        if self.linked_finding_ids:
            result["linked_finding_ids"] = list(self.linked_finding_ids)
        if self.malignant_lesion_probability is not None:
            result["x_malignant_lesion_probability"] = round(
                float(self.malignant_lesion_probability), 2
            )
        return result
