"""Geometric linking: the same lesion on the CC and the MLO view of one breast.

Each candidate pair (one CC finding, one MLO finding of the same breast) gets a cost, the sum
of four terms, each about 1 at the edge of what is plausible:

* **nipple distance** ``|d_CC − d_MLO| / distance_tolerance_mm`` — the two views' radial
  distances of one lesion agree within about 1–2 cm (see :mod:`mammocad.fuse.geometry`), so
  15 mm costs 1 and a difference over ``max_distance_difference_mm`` (25 mm) rules the pair out;
* **size** ``size_weight · |log2(size_CC / size_MLO)|`` — projections change the outline,
  rarely the size by more than a factor of two;
* **class** — 0 for the same label, small for labels readers confuse across views (mass,
  asymmetry, architectural distortion), larger with calcifications (which sit in masses), and
  ruled out for skin thickening or lymph nodes against anything else (lymph nodes in the
  axilla show on MLO only);
* **appearance** ``appearance_weight · (1 − cos) / 2`` of the two RoI feature vectors, when
  both have them.

One-to-one assignment (Hungarian method, :func:`scipy.optimize.linear_sum_assignment`) then
keeps the pairs whose cost is at most ``max_cost``; linked findings list each other's ids in
``linked_finding_ids``. A breast with several CC-like or MLO-like images (a technical repeat,
an XCCL beside the CC, an ML beside the MLO) is linked one pair of images at a time
(:func:`link_images`): each image shows the same lesions, so pooling two CC images' findings
into one assignment would let one lesion of a repeated view take two partners.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from mammocad.fuse.geometry import PlacedFinding
from mammocad.structures import FindingLabel

_FORBIDDEN = math.inf
_SIMILAR_DENSITIES = frozenset(
    {FindingLabel.MASS, FindingLabel.ASYMMETRY, FindingLabel.ARCHITECTURAL_DISTORTION}
)
_ONLY_WITH_ITSELF = frozenset({FindingLabel.SKIN_THICKENING, FindingLabel.LYMPH_NODE})
#: what the assignment sees for a ruled-out pair: finite (scipy needs a feasible matrix), far
#: above any ``max_cost``, so such a pair is assigned only when nothing else is and then dropped
_INFEASIBLE = 1e6


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkParams:
    """Weights and gates of the pair cost (module docstring); distances in mm."""

    distance_tolerance_mm: float = 15.0
    max_distance_difference_mm: float = 25.0
    size_weight: float = 0.5
    related_class_cost: float = 0.25
    calcification_cost: float = 0.5
    appearance_weight: float = 0.5
    max_cost: float = 1.5

    def __post_init__(self) -> None:
        if self.distance_tolerance_mm <= 0 or self.max_distance_difference_mm <= 0:
            raise ValueError("distance tolerance and gate must be positive (mm)")
        if self.max_cost < 0:
            raise ValueError("max_cost must be non-negative")


def class_cost(a: FindingLabel, b: FindingLabel, params: LinkParams) -> float:
    """Cost of calling findings of labels ``a`` and ``b`` one lesion (inf: never)."""
    if a is b:
        return 0.0
    if a in _ONLY_WITH_ITSELF or b in _ONLY_WITH_ITSELF:
        return _FORBIDDEN
    if a in _SIMILAR_DENSITIES and b in _SIMILAR_DENSITIES:
        return params.related_class_cost
    return params.calcification_cost


def cosine(a: npt.NDArray[np.float32] | None, b: npt.NDArray[np.float32] | None) -> float | None:
    """Cosine similarity of two feature vectors; ``None`` when either is missing or zero."""
    if a is None or b is None:
        return None
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norm if norm > 0 else None


def pair_cost(cc: PlacedFinding, mlo: PlacedFinding, params: LinkParams) -> float:
    """The cost of linking ``cc`` with ``mlo`` (module docstring); ``inf`` when ruled out."""
    difference = abs(cc.nipple_distance_mm - mlo.nipple_distance_mm)
    if difference > params.max_distance_difference_mm:
        return _FORBIDDEN
    cost = difference / params.distance_tolerance_mm
    cost += params.size_weight * abs(math.log2(cc.size_mm / mlo.size_mm))
    cost += class_cost(cc.finding.label, mlo.finding.label, params)
    similarity = cosine(cc.features, mlo.features)
    if similarity is not None:
        cost += params.appearance_weight * (1.0 - similarity) / 2.0
    return cost


def link_pairs(
    cc: Sequence[PlacedFinding], mlo: Sequence[PlacedFinding], params: LinkParams | None = None
) -> list[tuple[int, int, float]]:
    """One-to-one links ``(cc index, mlo index, cost)`` with cost ≤ ``params.max_cost``,
    in order of CC index."""
    params = params or LinkParams()
    if not cc or not mlo:
        return []
    costs = np.array([[pair_cost(a, b, params) for b in mlo] for a in cc], dtype=np.float64)
    rows, cols = linear_sum_assignment(np.where(np.isfinite(costs), costs, _INFEASIBLE))
    return [
        (int(r), int(c), float(costs[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if costs[r, c] <= params.max_cost
    ]


def _by_image(found: Sequence[PlacedFinding]) -> list[list[PlacedFinding]]:
    """``found`` split by the image it lies on (SOP Instance UID), in order of first finding."""
    images: dict[str, list[PlacedFinding]] = {}
    for item in found:
        images.setdefault(item.finding.sop_instance_uid, []).append(item)
    return list(images.values())


def _image_pairs(
    cc: Sequence[PlacedFinding], mlo: Sequence[PlacedFinding], params: LinkParams | None
) -> Iterator[tuple[PlacedFinding, PlacedFinding]]:
    for cc_image in _by_image(cc):
        for mlo_image in _by_image(mlo):
            for row, col, _ in link_pairs(cc_image, mlo_image, params):
                yield cc_image[row], mlo_image[col]


def link_images(
    cc: Sequence[PlacedFinding], mlo: Sequence[PlacedFinding], params: LinkParams | None = None
) -> list[tuple[str, str]]:
    """The ``(cc id, mlo id)`` links of one breast's findings, one-to-one within each pair of
    a CC-like and an MLO-like image (:func:`link_pairs`); records nothing in the findings."""
    return [(a.finding.id, b.finding.id) for a, b in _image_pairs(cc, mlo, params)]


def link_breast(
    cc: Sequence[PlacedFinding], mlo: Sequence[PlacedFinding], params: LinkParams | None = None
) -> list[tuple[str, str]]:
    """Link ``cc`` with ``mlo`` findings, each pair of images on its own (:func:`link_images`),
    and record it both ways in ``linked_finding_ids``.

    Returns the linked ``(cc id, mlo id)`` pairs. Existing links are kept, none duplicated.
    """
    linked = []
    for cc_item, mlo_item in _image_pairs(cc, mlo, params):
        a, b = cc_item.finding, mlo_item.finding
        if b.id not in a.linked_finding_ids:
            a.linked_finding_ids.append(b.id)
        if a.id not in b.linked_finding_ids:
            b.linked_finding_ids.append(a.id)
        linked.append((a.id, b.id))
    return linked
