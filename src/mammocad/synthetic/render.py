"""Render one planned view: anatomy, lesions, defects, storage orientation, burned-in marks.

Drawing happens on the canonical grid (chest wall left); the result is mirrored into the
stored orientation at the end, and every truth coordinate with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mammocad.structures import FindingLabel, FloatArray, Laterality, ViewPosition
from mammocad.synthetic import draw
from mammocad.synthetic._random import stream
from mammocad.synthetic.anatomy import Anatomy, Appearance, compose, render_anatomy
from mammocad.synthetic.calcs import calcification_cluster
from mammocad.synthetic.geometry import ViewGeometry
from mammocad.synthetic.truth import Box, BreastLesion

# share of a lesion's peak that counts as part of it for its box: the core and the brighter
# part of spicules, as a reader would outline them
_SUPPORT = 0.25
# an architectural distortion has no core, and its strands pile up where they start near the
# centre, so a share of the peak boxes that hub only (about 0.6 of the lesion's size at full
# resolution); its box is where its strands run: any strand pixel at this share of the
# contrast it was drawn at (0.85-0.95 of the size). The tissue pull around it, a shift of
# tissue already there that fades out over 1.5 radii, is not outlined.
_STRAND_SUPPORT = 0.05
_VISIBLE = 0.5  # share of a lesion's signal that must land in the image for it to count


@dataclass(slots=True, kw_only=True)
class Layers:
    """What lesions add on top of the anatomy (canonical grid)."""

    density: FloatArray
    bright: FloatArray
    skin_extra_mm: FloatArray | None = None


def stamp(
    layers: Layers, patch: draw.Patch, coverage: FloatArray | None, floor: float | None = None
) -> Box | None:
    """Add ``patch`` inside the breast; return the box of its visible support (values of at
    least ``floor``, ``_SUPPORT ×`` the patch's own peak by default) in canonical pixel edges,
    or ``None`` when too little of it lands inside the image and the breast."""
    target = layers.density if patch.layer is draw.Layer.DENSITY else layers.bright
    rows, cols = target.shape
    h, w = patch.values.shape
    x0, y0 = max(patch.x0, 0), max(patch.y0, 0)
    x1, y1 = min(patch.x0 + w, cols), min(patch.y0 + h, rows)
    total = float(patch.values.sum())
    if x1 <= x0 or y1 <= y0 or total <= 0:
        return None
    part = patch.values[y0 - patch.y0 : y1 - patch.y0, x0 - patch.x0 : x1 - patch.x0]
    if coverage is not None:
        part = part * coverage[y0:y1, x0:x1]
    if float(part.sum()) < _VISIBLE * total:
        return None
    target[y0:y1, x0:x1] += part
    if floor is None:
        floor = _SUPPORT * float(patch.values.max())
    rows_in, cols_in = np.nonzero(part >= floor)
    if len(rows_in) == 0:
        return None
    return (
        float(x0 + cols_in.min()),
        float(y0 + rows_in.min()),
        float(x0 + cols_in.max() + 1),
        float(y0 + rows_in.max() + 1),
    )


def union(boxes: list[Box | None]) -> Box | None:
    found = [b for b in boxes if b is not None]
    if not found:
        return None
    return (
        min(b[0] for b in found),
        min(b[1] for b in found),
        max(b[2] for b in found),
        max(b[3] for b in found),
    )


def _mass(
    rng: np.random.Generator,
    lesion: BreastLesion,
    centre: tuple[float, float],
    radius: float,
    edge: float,
) -> list[draw.Patch]:
    c = lesion.contrast
    if lesion.subtype == "spiculated":
        # ill-defined core; fine spicules reaching 2-3 radii out
        core = draw.irregular_mass(
            rng, centre, radius=0.8 * radius, contrast=c, edge_px=max(edge, 2.5 * edge)
        )
        spicules = draw.radiating_lines(
            rng,
            centre,
            inner=0.6 * radius,
            outer=radius * rng.uniform(2.0, 3.0),
            count=int(rng.integers(14, 32)),
            width_px=max(1.0, 1.6 * edge),
            contrast=0.4 * c,
        )
        return [core, spicules]
    if lesion.subtype == "irregular":
        return [draw.irregular_mass(rng, centre, radius=radius, contrast=c, edge_px=3 * edge)]
    ratio = {"round": rng.uniform(1.0, 1.15), "oval": rng.uniform(1.3, 1.8)}.get(
        lesion.subtype, rng.uniform(1.1, 1.5)
    )
    roughness = 0.12 if lesion.subtype == "lobulated" else 0.0
    return [
        draw.round_mass(
            rng, centre, radius=radius, contrast=c, ratio=ratio, roughness=roughness, edge_px=edge
        )
    ]


def _patches(
    rng: np.random.Generator, lesion: BreastLesion, centre: tuple[float, float], anatomy: Anatomy
) -> list[draw.Patch]:
    """The patches of one lesion in one view (sizes differ a little between projections)."""
    spacing = anatomy.spacing_mm
    radius = lesion.size_mm / 2 / spacing * rng.uniform(0.92, 1.08)
    edge = max(0.5, 0.15 / spacing)
    c = lesion.contrast
    if lesion.label is FindingLabel.MASS:
        return _mass(rng, lesion, centre, radius, edge)
    if lesion.label is FindingLabel.CALCIFICATION:
        return [
            calcification_cluster(
                rng,
                centre,
                spacing_mm=spacing,
                extent_mm=lesion.size_mm,
                contrast=c,
                subtype=lesion.subtype,
            )
        ]
    if lesion.label is FindingLabel.ARCHITECTURAL_DISTORTION:
        return [_distortion(rng, centre, radius, c, anatomy)]
    if lesion.label is FindingLabel.ASYMMETRY:
        ratio = rng.uniform(1.0, 1.8)
        return [draw.tissue_blob(rng, centre, radius=radius, contrast=c, ratio=ratio)]
    if lesion.label is FindingLabel.LYMPH_NODE:
        # a normal node is oval with a fatty hilum; a metastatic one round, dense, no hilum
        ratio = rng.uniform(1.0, 1.25) if lesion.malignant else rng.uniform(1.5, 2.1)
        hilum = not lesion.malignant
        return [
            draw.lymph_node(
                rng, centre, radius=radius, contrast=c, ratio=ratio, hilum=hilum, edge_px=edge
            )
        ]
    raise ValueError(f"{lesion.label.value} is not drawn as patches")


def _distortion(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
    contrast: float,
    anatomy: Anatomy,
) -> draw.Patch:
    """Tissue pulled towards a point, with strands radiating from it and no central mass."""
    draw.pull_towards(anatomy.gland, centre, radius=radius, strength=rng.uniform(0.3, 0.55))
    return draw.radiating_lines(
        rng,
        centre,
        inner=0.12 * radius,
        outer=radius,
        count=int(rng.integers(12, 24)),
        width_px=max(1.0, 0.35 / anatomy.spacing_mm),
        contrast=contrast,
    )


def skin_thickening(
    layers: Layers,
    anatomy: Anatomy,
    geom: ViewGeometry,
    lesion: BreastLesion,
    skin_mm: float,
) -> Box | None:
    """Thicken a stretch of skin ``size_mm`` long by up to ``contrast`` mm; return its box."""
    offset = geom.offset_mm(lesion.lateral_mm, lesion.superior_mm)
    point = geom.skin_point(lesion.depth_mm, upper=offset > 0)
    if point is None:
        return None
    spacing = anatomy.spacing_mm
    rows, cols = anatomy.distance.shape
    half = lesion.size_mm / spacing
    cx, cy = point[0] / spacing, point[1] / spacing
    x0, y0 = max(int(cx - half), 0), max(int(cy - half), 0)
    x1, y1 = min(int(cx + half) + 1, cols), min(int(cy + half) + 1, rows)
    if x1 <= x0 or y1 <= y0:
        return None
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    r = np.hypot(xs + 0.5 - cx, ys + 0.5 - cy) * spacing / (lesion.size_mm / 2.5)
    extra = (lesion.contrast * np.exp(-0.5 * r * r)).astype(np.float32)
    if layers.skin_extra_mm is None:
        layers.skin_extra_mm = np.zeros_like(anatomy.distance)
    region = layers.skin_extra_mm[y0:y1, x0:x1]
    np.maximum(region, extra, out=region)
    inside = anatomy.coverage[y0:y1, x0:x1] > 0.5
    thick = (anatomy.distance[y0:y1, x0:x1] < skin_mm + extra) & (extra > 0.3 * lesion.contrast)
    rr, cc = np.nonzero(thick & inside)
    if len(rr) == 0:
        return None
    return (
        float(x0 + cc.min()),
        float(y0 + rr.min()),
        float(x0 + cc.max() + 1),
        float(y0 + rr.max() + 1),
    )


def _nipple_density(layers: Layers, geom: ViewGeometry, spacing: float) -> None:
    """The nipple and areola are denser than the fat around them."""
    sigma = geom.nipple_mm / 2.5 / spacing
    centre = ((geom.nipple[0] - 0.4 * geom.nipple_mm) / spacing, geom.nipple[1] / spacing)
    frame = draw.Frame.around(centre, 3 * sigma)
    blob = 0.35 * np.exp(-0.5 * (frame.dx**2 + frame.dy**2) / sigma**2)
    stamp(layers, frame.patch(blob), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class DrawnLesion:
    lesion: BreastLesion
    box: Box  # canonical pixel edges


def draw_lesions(
    *,
    seed: int,
    lesions: tuple[BreastLesion, ...],
    view: ViewPosition,
    geom: ViewGeometry,
    anatomy: Anatomy,
    layers: Layers,
    skin_mm: float,
) -> list[DrawnLesion]:
    """Draw every lesion visible in ``view``; return those that landed in the image."""
    drawn = []
    spacing = anatomy.spacing_mm
    for lesion in lesions:
        if view not in lesion.views:
            continue
        rng = stream(seed, "draw", lesion.lesion_id, view.value)
        if lesion.label is FindingLabel.SKIN_THICKENING:
            box = skin_thickening(layers, anatomy, geom, lesion, skin_mm)
        else:
            x, y = geom.point_mm(
                lesion.depth_mm, geom.offset_mm(lesion.lateral_mm, lesion.superior_mm)
            )
            patches = _patches(rng, lesion, (x / spacing, y / spacing), anatomy)
            if lesion.label is FindingLabel.ARCHITECTURAL_DISTORTION:
                floor = _STRAND_SUPPORT * lesion.contrast
            else:
                floor = _SUPPORT * max(float(p.values.max()) for p in patches)
            box = union([stamp(layers, p, anatomy.coverage, floor) for p in patches])
        if box is not None:
            drawn.append(DrawnLesion(lesion=lesion, box=box))
    return drawn


def render_canonical(
    *,
    seed: int,
    laterality: Laterality,
    view: ViewPosition,
    geom: ViewGeometry,
    lesions: tuple[BreastLesion, ...],
    grid_shape: tuple[int, int],
    spacing_mm: float,
    appearance: Appearance,
) -> tuple[FloatArray, list[DrawnLesion]]:
    """Display image on the canonical grid and the lesions drawn into it."""
    rows, cols = grid_shape
    rng = stream(seed, "anatomy", laterality.value, view.value)
    anatomy = render_anatomy(
        geom, rows=rows, cols=cols, spacing_mm=spacing_mm, appearance=appearance, rng=rng
    )
    zeros = np.zeros((rows, cols), dtype=np.float32)
    layers = Layers(density=zeros, bright=zeros.copy())
    _nipple_density(layers, geom, spacing_mm)
    drawn = draw_lesions(
        seed=seed,
        lesions=lesions,
        view=view,
        geom=geom,
        anatomy=anatomy,
        layers=layers,
        skin_mm=appearance.skin_mm,
    )
    image = compose(
        anatomy,
        appearance,
        density=layers.density,
        bright=layers.bright,
        skin_extra_mm=layers.skin_extra_mm,
        rng=rng,
    )
    return image, drawn


def mirror_box(box: Box, columns: int) -> Box:
    """A box under the horizontal mirror of a ``columns``-wide grid (pixel-edge coordinates)."""
    return (columns - box[2], box[1], columns - box[0], box[3])
