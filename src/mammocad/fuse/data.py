"""Breasts as fusion inputs: from a pipeline run, to tensors, to and from a cache file.

A :class:`BreastCase` holds the findings (and fusion candidates) of one breast's CC-like and
MLO-like images, placed by :mod:`mammocad.fuse.geometry`. Images of other projections take no
part in fusion: their findings still count in the aggregate of :mod:`mammocad.risk`.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mammocad.detect.predict import ImagePrediction
from mammocad.fuse.geometry import CC_LIKE, MLO_LIKE, PlacedFinding, ViewFrame
from mammocad.fuse.model import GEOMETRY_FEATURES, FusionBatch
from mammocad.risk.aggregate import noisy_or
from mammocad.structures import (
    Finding,
    FindingLabel,
    Laterality,
    PreprocessedImage,
    Study,
    ViewPosition,
)

CACHE_FORMAT = 1
_EPS = 1e-4


@dataclass(frozen=True, slots=True, kw_only=True)
class BreastCase:
    """One breast: ``findings`` of its CC- and MLO-like images (reported findings and lower
    scoring candidates), ``label`` 1 malignant, 0 not, ``None`` unknown (inference).

    ``processed_views`` (the CC- and MLO-like images that came through detection) and
    ``quality`` (the quality gate's score of each, in [0, 1]) are what the risk model
    (:mod:`mammocad.risk.features`) reads beside the findings; both are empty in caches
    written before they were recorded.
    """

    study_instance_uid: str
    patient_id: str
    laterality: Laterality
    findings: tuple[PlacedFinding, ...]
    label: int | None = None
    processed_views: tuple[ViewPosition, ...] = ()
    quality: tuple[float, ...] = ()

    def views(
        self, *, keep: Callable[[str], bool] | None = None
    ) -> tuple[list[PlacedFinding], list[PlacedFinding]]:
        """The reported findings as (CC-like, MLO-like), the inputs of geometric linking;
        with ``keep`` the findings and candidates whose id it accepts instead."""
        reported = [
            f for f in self.findings if (f.reported if keep is None else keep(f.finding.id))
        ]
        return [f for f in reported if f.is_cc], [f for f in reported if not f.is_cc]

    def single_view_probability(self, *, candidates: bool = False) -> float:
        """Today's aggregation: the noisy-OR of ``score · malignancy`` of each view's own
        findings (:func:`mammocad.risk.aggregate.noisy_or`); with ``candidates`` over the
        fusion candidates too."""
        return noisy_or(f.finding for f in self.findings if candidates or f.reported)


def breast_cases(
    study: Study,
    preprocessed: Mapping[str, PreprocessedImage],
    predictions: Mapping[str, ImagePrediction],
    *,
    labels: Mapping[Laterality, bool] | None = None,
) -> list[BreastCase]:
    """The fusion inputs of every breast of ``study`` with a processed CC- or MLO-like image
    that came through detection, in the order R, L."""
    cases = []
    for side in (Laterality.R, Laterality.L):
        placed: list[PlacedFinding] = []
        views: list[ViewPosition] = []
        quality: list[float] = []
        for image in study.breast(side):
            view = image.view
            if view not in CC_LIKE and view not in MLO_LIKE:
                continue
            if view is None or image.key not in predictions or image.key not in preprocessed:
                continue
            item = preprocessed[image.key]
            views.append(view)
            quality.append(float(item.quality.score))
            placed += _placed(predictions[image.key], item, view)
        if views:
            label = None if labels is None else int(labels[side])
            cases.append(
                BreastCase(
                    study_instance_uid=study.study_instance_uid,
                    patient_id=study.patient_id or study.study_instance_uid,
                    laterality=side,
                    findings=tuple(placed),
                    label=label,
                    processed_views=tuple(views),
                    quality=tuple(quality),
                )
            )
    return cases


def _placed(
    prediction: ImagePrediction, item: PreprocessedImage, view: ViewPosition
) -> list[PlacedFinding]:
    frame = ViewFrame.of(item)
    candidates, features = prediction.fusion_inputs()
    reported = {finding.id for finding in prediction.findings}
    return [
        PlacedFinding.place(
            finding,
            view=view,
            frame=frame,
            features=None if features is None else features[row],
            reported=finding.id in reported,
        )
        for row, finding in enumerate(candidates)
    ]


def _logit(p: float) -> float:
    p = min(1.0 - _EPS, max(_EPS, p))
    return math.log(p / (1.0 - p))


def geometry_row(item: PlacedFinding) -> list[float]:
    """The :data:`~mammocad.fuse.model.GEOMETRY_FEATURES` of one finding, roughly unit scale."""
    found = item.finding
    return [
        item.nipple_distance_mm / 100.0,
        item.size_mm / 10.0,
        found.score,
        _logit(found.malignancy_probability) / 4.0,
        float(item.is_cc),
        float(not item.is_cc),
    ]


def base_logit(item: PlacedFinding) -> float:
    """Logit of the detector's own contribution ``score · malignancy`` (the noisy-OR term)."""
    return _logit(item.finding.score * item.finding.malignancy_probability)


def collate(cases: Sequence[BreastCase], feature_dim: int) -> FusionBatch:
    """Pad ``cases`` into one :class:`FusionBatch` (at least one token slot per breast)."""
    count = max([1, *(len(case.findings) for case in cases)])
    size = len(cases)
    features = torch.zeros((size, count, feature_dim))
    geometry = torch.zeros((size, count, len(GEOMETRY_FEATURES)))
    is_cc = torch.zeros((size, count), dtype=torch.bool)
    valid = torch.zeros((size, count), dtype=torch.bool)
    reported = torch.zeros((size, count), dtype=torch.bool)
    base = torch.zeros((size, count))
    for row, case in enumerate(cases):
        for col, item in enumerate(case.findings):
            if item.features is not None:
                if item.features.shape != (feature_dim,):
                    raise ValueError(
                        f"finding {item.finding.id} has {item.features.shape} features, the "
                        f"fusion module expects ({feature_dim},): retrain it for this detector"
                    )
                features[row, col] = torch.from_numpy(np.asarray(item.features, np.float32))
            geometry[row, col] = torch.tensor(geometry_row(item))
            is_cc[row, col] = item.is_cc
            valid[row, col] = True
            reported[row, col] = item.reported
            base[row, col] = base_logit(item)
    return FusionBatch(
        features=features,
        geometry=geometry,
        is_cc=is_cc,
        valid=valid,
        reported=reported,
        base_logit=base,
    )


def save_cases(path: Path, cases: Sequence[BreastCase]) -> None:
    """Write ``cases`` (findings, geometry, labels and RoI features) to one ``.npz`` file."""
    rows: list[np.ndarray] = []
    meta = []
    for case in cases:
        findings = []
        for item in case.findings:
            has = item.features is not None
            if has:
                rows.append(np.asarray(item.features, np.float32))
            findings.append({**_finding_dict(item), "feature_row": len(rows) - 1 if has else -1})
        meta.append(
            {
                "study_instance_uid": case.study_instance_uid,
                "patient_id": case.patient_id,
                "laterality": case.laterality.value,
                "label": case.label,
                "views": [view.value for view in case.processed_views],
                "quality": list(case.quality),
                "findings": findings,
            }
        )
    features = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    text = json.dumps({"format": CACHE_FORMAT, "cases": meta})
    np.savez_compressed(partial, features=features.astype(np.float16), meta=np.array(text))
    partial.replace(path)


def load_cases(path: Path) -> list[BreastCase]:
    """Read a file written by :func:`save_cases`; ValueError when it is of another format or
    cannot be read (cut short, damaged)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            features = data["features"].astype(np.float32)
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable fusion cache ({error}); delete it") from error
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"{path} is not a format-{CACHE_FORMAT} fusion cache; delete it")
    return [
        BreastCase(
            study_instance_uid=case["study_instance_uid"],
            patient_id=case["patient_id"],
            laterality=Laterality(case["laterality"]),
            label=case["label"],
            findings=tuple(_placed_from_dict(item, features) for item in case["findings"]),
            processed_views=tuple(ViewPosition(v) for v in case.get("views", ())),
            quality=tuple(float(score) for score in case.get("quality", ())),
        )
        for case in meta["cases"]
    ]


def _finding_dict(item: PlacedFinding) -> dict[str, Any]:
    found = item.finding
    return {
        "id": found.id,
        "sop_instance_uid": found.sop_instance_uid,
        "label": found.label.value,
        "score": found.score,
        "malignancy_probability": found.malignancy_probability,
        "box": list(found.box),
        "view": item.view.value,
        "nipple_distance_mm": item.nipple_distance_mm,
        "size_mm": item.size_mm,
        "reported": item.reported,
    }


def _placed_from_dict(data: dict[str, Any], features: np.ndarray) -> PlacedFinding:
    x1, y1, x2, y2 = (float(v) for v in data["box"])
    finding = Finding(
        id=data["id"],
        sop_instance_uid=data["sop_instance_uid"],
        label=FindingLabel(data["label"]),
        score=float(data["score"]),
        malignancy_probability=float(data["malignancy_probability"]),
        box=(x1, y1, x2, y2),
    )
    row = int(data["feature_row"])
    return PlacedFinding(
        finding=finding,
        view=ViewPosition(data["view"]),
        nipple_distance_mm=float(data["nipple_distance_mm"]),
        size_mm=float(data["size_mm"]),
        features=features[row] if row >= 0 else None,
        reported=bool(data["reported"]),
    )
