"""Fitting and applying the lesion ranker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mammocad.eval.froc import hit_matrix
from mammocad.eval.froc_pool import FrocImages
from mammocad.ranker.features import FloatArray, candidate_features, feature_names
from mammocad.risk.model import BoostParams, RiskModel, fit_boosted

#: more, slower-learning trees than the breast model: tens of thousands of boxes, few positive.
#: Fixed before any held-out measurement (docs/ranker.md).
RANKER_PARAMS = BoostParams(
    max_iter=100, max_depth=3, learning_rate=0.05, min_samples_leaf=20, monotonic=False
)


@dataclass(frozen=True, kw_only=True)
class LesionRanker:
    """Exported trees over :func:`feature_names` of ``classes``, for inputs of ``input_size``."""

    model: RiskModel
    classes: tuple[str, ...]
    input_size: tuple[int, int]

    def probabilities(
        self,
        boxes: npt.ArrayLike,
        scores: npt.ArrayLike,
        labels: Sequence[str],
        malignancy: npt.ArrayLike | None,
    ) -> FloatArray:
        """P(malignant lesion) of each of one image's boxes (input pixels)."""
        rows = candidate_features(
            boxes, scores, labels, malignancy, classes=self.classes, input_size=self.input_size
        )
        if len(rows) == 0:
            return np.zeros(0)
        return self.model.predict(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "input_size": list(self.input_size),
            "model": self.model.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LesionRanker:
        classes = tuple(str(name) for name in data["classes"])
        model = RiskModel.from_dict(data["model"])
        if model.features != feature_names(classes):
            raise ValueError(
                f"the ranker's features {model.features} are not this version's "
                f"{feature_names(classes)}"
            )
        rows, columns = (int(v) for v in data["input_size"])
        return cls(model=model, classes=classes, input_size=(rows, columns))


@dataclass(frozen=True, kw_only=True)
class RankerRows:
    """Training rows: one per box, positive when it hits a malignant lesion."""

    x: FloatArray
    y: npt.NDArray[np.int64]
    images: int


def ranker_rows(
    evaluations: Sequence[FrocImages], *, classes: Sequence[str], input_size: tuple[int, int]
) -> RankerRows:
    """Rows of every box of every image; boxes that hit a lesion of unknown malignancy are
    left out (they can be neither taught as malignant nor as not), as the FROC ignores them."""
    x: list[FloatArray] = []
    y: list[npt.NDArray[np.int64]] = []
    images = 0
    for evaluation in evaluations:
        if tuple(evaluation.classes) != tuple(classes):
            raise ValueError(
                f"an evaluation has classes {evaluation.classes}, the bundle {tuple(classes)}"
            )
        for pred, truth in zip(evaluation.predictions, evaluation.truths, strict=True):
            images += 1
            features = candidate_features(
                pred.boxes,
                pred.scores,
                pred.labels,
                pred.malignancy,
                classes=classes,
                input_size=input_size,
            )
            if len(features) == 0:
                continue
            truth_boxes = np.asarray(truth.boxes, dtype=np.float64).reshape(-1, 4)
            flags = np.asarray(
                [-1] * len(truth_boxes) if truth.malignant is None else truth.malignant, int
            ).reshape(-1)
            hits = hit_matrix(pred.boxes, truth_boxes)
            positive: npt.NDArray[np.bool_] = np.asarray(hits[:, flags == 1].any(axis=1))
            unknown = np.asarray(hits[:, flags < 0].any(axis=1)) & ~positive
            x.append(features[~unknown])
            y.append(positive[~unknown].astype(np.int64))
    if not x:
        raise ValueError("the evaluations hold no detections to learn from")
    return RankerRows(x=np.concatenate(x), y=np.concatenate(y), images=images)


def fit_ranker(
    evaluations: Sequence[FrocImages],
    *,
    classes: Sequence[str],
    input_size: tuple[int, int],
    params: BoostParams = RANKER_PARAMS,
) -> tuple[LesionRanker, RankerRows]:
    """Fit the ranker on ``eval detector`` outputs (``images.json``, input pixels) of the
    bundle it will serve; returns it with the rows it saw."""
    rows = ranker_rows(evaluations, classes=classes, input_size=input_size)
    positives = int(rows.y.sum())
    if positives < 10 or positives == len(rows.y):
        raise ValueError(
            f"{len(rows.y)} boxes, {positives} on a malignant lesion: the ranker needs at least "
            "10 of those and some others; evaluate the bundle on more phantom studies"
        )
    names = feature_names(classes)
    model = fit_boosted(rows.x, rows.y, params=params, features=names)
    return LesionRanker(model=model, classes=tuple(classes), input_size=input_size), rows
