"""Which lesions a breast gets, how large and how conspicuous, and where they sit.

Positions are drawn in the breast frame (see :mod:`mammocad.synthetic.geometry`) and accepted
only where the lesion lies inside the breast in both views, clear of the skin, the chest wall
edge and the pectoral muscle, so one lesion projects to consistent places on CC and MLO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from mammocad.errors import SynthesisError
from mammocad.structures import FindingLabel, ViewPosition
from mammocad.synthetic.anatomy import distance_mm, rasterize
from mammocad.synthetic.geometry import ViewGeometry

_PLACEMENT_SPACING_MM = 1.0
_TRIES = 400


@dataclass(frozen=True, slots=True, kw_only=True)
class LesionType:
    """One lesion appearance. ``contrast`` is in the unit its drawing uses: added density in
    units of fibroglandular tissue (masses, asymmetry, distortion, nodes), added display
    brightness (calcifications), or extra skin thickness in mm (skin thickening)."""

    key: str
    label: FindingLabel
    malignant: bool
    subtype: str
    size_mm: tuple[float, float]
    contrast: tuple[float, float]
    clearance: float  # room needed around the centre, in units of the size


def _t(
    key: str, label: FindingLabel, subtype: str, *bounds: float, room: float = 0.6
) -> LesionType:
    return LesionType(
        key=key,
        label=label,
        malignant=key.startswith("malignant"),
        subtype=subtype,
        size_mm=(bounds[0], bounds[1]),
        contrast=(bounds[2], bounds[3]),
        clearance=room,
    )


_M, _C = FindingLabel.MASS, FindingLabel.CALCIFICATION
_AD, _AS = FindingLabel.ARCHITECTURAL_DISTORTION, FindingLabel.ASYMMETRY
_SK, _LN = FindingLabel.SKIN_THICKENING, FindingLabel.LYMPH_NODE

CATALOG: dict[str, LesionType] = {
    t.key: t
    for t in (
        _t("benign_round_mass", _M, "round", 6, 16, 0.18, 0.7),
        _t("benign_oval_mass", _M, "oval", 7, 22, 0.18, 0.7),
        _t("benign_lobulated_mass", _M, "lobulated", 8, 22, 0.18, 0.65),
        _t("malignant_spiculated_mass", _M, "spiculated", 7, 22, 0.25, 0.8, room=1.0),
        _t("malignant_irregular_mass", _M, "irregular", 8, 26, 0.22, 0.75, room=0.8),
        _t("benign_coarse_calcification", _C, "coarse", 4, 14, 0.3, 0.65),
        _t("malignant_pleomorphic_calcification", _C, "fine_pleomorphic", 5, 16, 0.3, 0.65),
        _t("malignant_linear_calcification", _C, "fine_linear", 6, 20, 0.3, 0.65),
        _t("malignant_distortion", _AD, "radiating", 16, 36, 0.1, 0.3, room=0.7),
        _t("benign_radial_scar", _AD, "radial_scar", 12, 26, 0.08, 0.22, room=0.7),
        _t("benign_focal_asymmetry", _AS, "focal", 16, 40, 0.18, 0.45, room=0.45),
        _t("malignant_developing_asymmetry", _AS, "developing", 14, 32, 0.22, 0.5, room=0.45),
        _t("benign_skin_thickening", _SK, "focal", 20, 50, 1.5, 4.0),
        _t("malignant_skin_thickening", _SK, "inflammatory", 35, 70, 2.0, 5.0),
        _t("benign_lymph_node", _LN, "fatty_hilum", 6, 15, 0.3, 0.6),
        _t("malignant_lymph_node", _LN, "enlarged", 12, 22, 0.45, 0.8),
    )
}

#: How often each lesion type is the finding of a malignant / benign breast (relative weights).
MALIGNANT_MIX: dict[str, float] = {
    "malignant_spiculated_mass": 0.34,
    "malignant_irregular_mass": 0.16,
    "malignant_pleomorphic_calcification": 0.16,
    "malignant_linear_calcification": 0.1,
    "malignant_distortion": 0.1,
    "malignant_developing_asymmetry": 0.08,
    "malignant_skin_thickening": 0.03,
    "malignant_lymph_node": 0.03,
}
BENIGN_MIX: dict[str, float] = {
    "benign_round_mass": 0.14,
    "benign_oval_mass": 0.16,
    "benign_lobulated_mass": 0.06,
    "benign_coarse_calcification": 0.24,
    "benign_radial_scar": 0.04,
    "benign_focal_asymmetry": 0.16,
    "benign_lymph_node": 0.14,
    "benign_skin_thickening": 0.06,
}


def lesion_types(
    label: FindingLabel, malignant: bool, subtype: str | None = None
) -> list[LesionType]:
    """Catalog entries matching ``label`` / ``malignant`` (and ``subtype`` when given)."""
    matches = [
        t
        for t in CATALOG.values()
        if t.label is label and t.malignant == malignant and subtype in (None, t.subtype)
    ]
    if not matches:
        known = sorted(
            f"{t.subtype} ({'malignant' if t.malignant else 'benign'})"
            for t in CATALOG.values()
            if t.label is label
        )
        kind = "malignant" if malignant else "benign"
        raise SynthesisError(
            f"the phantom has no {kind} {label.value} of subtype {subtype!r};"
            f" ask for one of: {', '.join(known)}"
        )
    return matches


def draw_type(rng: np.random.Generator, malignant: bool) -> LesionType:
    """A lesion type drawn from :data:`MALIGNANT_MIX` or :data:`BENIGN_MIX`."""
    mix = MALIGNANT_MIX if malignant else BENIGN_MIX
    keys = list(mix)
    weights = np.array([mix[k] for k in keys])
    return CATALOG[keys[int(rng.choice(len(keys), p=weights / weights.sum()))]]


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """Log-uniform draw: as many subtle as obvious lesions per octave of contrast or size."""
    lo, hi = bounds
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomMap:
    """Free room (mm) around each point of one view: to the skin, the image edges and the
    pectoral muscle, on a coarse 1 mm grid."""

    geom: ViewGeometry
    room: npt.NDArray[np.float32]

    @classmethod
    def of(cls, geom: ViewGeometry) -> RoomMap:
        spacing = _PLACEMENT_SPACING_MM
        rows = math.ceil(geom.height_mm / spacing)
        cols = math.ceil(geom.width_mm / spacing)
        room = distance_mm(rasterize(geom.outline, rows, cols, spacing), spacing)
        xs = (np.arange(cols, dtype=np.float32) + 0.5) * spacing
        ys = (np.arange(rows, dtype=np.float32) + 0.5) * spacing
        edges = np.minimum.outer(
            np.minimum(ys, geom.height_mm - ys), np.minimum(xs, geom.width_mm - xs)
        )
        room = np.minimum(room, edges.astype(np.float32))
        if geom.pectoral is not None:
            outside = (rasterize(geom.pectoral, rows, cols, spacing) < 0.5).astype(np.uint8)
            room = np.minimum(room, cv2.distanceTransform(outside, cv2.DIST_L2, 5) * spacing)
        return cls(geom=geom, room=room)

    def at(self, x_mm: float, y_mm: float) -> float:
        """Room at a point; negative outside the image."""
        i, j = int(y_mm // _PLACEMENT_SPACING_MM), int(x_mm // _PLACEMENT_SPACING_MM)
        if not (0 <= i < self.room.shape[0] and 0 <= j < self.room.shape[1]):
            return -1.0
        return float(self.room[i, j])


def _span(geom: ViewGeometry) -> tuple[float, float]:
    """Vertical extent (mm) of the skin inside the image, above and below the nipple axis."""
    ys = np.clip(geom.skin[:, 1], 0.0, geom.height_mm)
    return geom.nipple[1] - float(ys.min()), float(ys.max()) - geom.nipple[1]


def place_in_breast(
    rng: np.random.Generator, maps: dict[ViewPosition, RoomMap], needed_mm: float
) -> tuple[float, float, float]:
    """(depth, lateral, superior) in mm where both views have ``needed_mm`` of room."""
    cc, mlo = maps[ViewPosition.CC].geom, maps[ViewPosition.MLO].geom
    max_depth = min(cc.nipple[0], mlo.nipple[0])
    up_cc, down_cc = _span(cc)
    up_mlo, down_mlo = _span(mlo)
    for attempt in range(_TRIES):
        need = needed_mm * (1.0 - 0.5 * attempt / _TRIES)  # shrink the margin if space is tight
        depth = rng.uniform(0.06, 0.95) * max_depth
        lateral = rng.uniform(-down_cc, up_cc) * 0.9
        superior = rng.uniform(-down_mlo, up_mlo) * 0.9
        if all(
            room.at(*room.geom.point_mm(depth, room.geom.offset_mm(lateral, superior))) >= need
            for room in maps.values()
        ):
            return depth, lateral, superior
    raise SynthesisError(
        f"no room for a lesion needing {needed_mm:.0f} mm in this breast; ask for a smaller"
        " lesion or another seed"
    )


def place_on_skin(
    rng: np.random.Generator, maps: dict[ViewPosition, RoomMap], length_mm: float
) -> tuple[float, float, float]:
    """(depth, lateral, superior) of a skin point seen in profile on both views."""
    cc, mlo = maps[ViewPosition.CC].geom, maps[ViewPosition.MLO].geom
    angle = math.radians(mlo.obliquity_deg)
    for _ in range(_TRIES):
        depth = rng.uniform(0.15, 0.75) * min(cc.nipple[0], mlo.nipple[0])
        upper = bool(rng.random() < 0.5)
        points = [g.skin_point(depth, upper) for g in (cc, mlo)]
        p_cc, p_mlo = points
        if p_cc is None or p_mlo is None:
            continue
        if not (_inside(p_cc, cc, length_mm / 2) and _inside(p_mlo, mlo, length_mm / 2)):
            continue
        lateral = cc.nipple[1] - p_cc[1]
        offset_mlo = mlo.nipple[1] - p_mlo[1]
        superior = (offset_mlo - lateral * math.sin(angle)) / math.cos(angle)
        return depth, lateral, superior
    raise SynthesisError("no stretch of skin visible on both views; try another seed")


def _inside(point: tuple[float, float], geom: ViewGeometry, margin: float) -> bool:
    x, y = point
    return margin <= y <= geom.height_mm - margin and margin <= x <= geom.width_mm - 1.0


def place_in_axilla(
    rng: np.random.Generator, room: RoomMap, size_mm: float
) -> tuple[float, float, float]:
    """(depth, 0, superior) of an axillary node on MLO, beside the pectoral muscle's edge."""
    geom = room.geom
    if geom.pectoral is None:
        raise SynthesisError("axillary lymph nodes are placed on the MLO view only")
    edge = geom.pectoral[:64]  # the muscle edge, from the top down
    angle = math.radians(geom.obliquity_deg)
    for _ in range(_TRIES):
        y = rng.uniform(0.02, 0.3) * geom.height_mm
        x = float(np.interp(y, edge[:, 1], edge[:, 0])) + rng.uniform(0.2, 1.6) * size_mm
        if room.at(x, y) + size_mm * 0.3 >= size_mm / 2 + 1.0 and y >= size_mm * 0.6:
            return geom.nipple[0] - x, 0.0, (geom.nipple[1] - y) / math.cos(angle)
    raise SynthesisError("no room in the axilla for a lymph node; try another seed")
