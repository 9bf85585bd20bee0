"""Per-box features of the lesion ranker, in model-input pixels (the detector's frame)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: what the detector and classifier said, the box's geometry, and its standing in its image
BASE_FEATURES: tuple[str, ...] = (
    "score",
    "malignancy",
    "score_x_malignancy",
    "log_area",
    "aspect",
    "x_centre",
    "y_centre",
    "rank",
    "score_to_max",
    "malignancy_to_max",
)


def feature_names(classes: Sequence[str]) -> tuple[str, ...]:
    """The columns of :func:`candidate_features` for these lesion classes."""
    return (*BASE_FEATURES, *(f"label_{name}" for name in classes))


def candidate_features(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    labels: Sequence[str],
    malignancy: npt.ArrayLike | None,
    *,
    classes: Sequence[str],
    input_size: tuple[int, int],
) -> FloatArray:
    """``float[N, len(feature_names(classes))]`` for one image's N boxes.

    ``boxes`` ``[x1, y1, x2, y2]`` in input pixels of ``input_size`` (rows, columns), where the
    chest wall is on the left and the image is upright, so ``x_centre`` reads "distance from
    the chest wall" and ``y_centre`` "height in the breast" the same way for every view.
    ``rank`` is the box's place among the image's boxes by score (0 = strongest); the
    ``*_to_max`` features compare it with the image's strongest box and most malignant one.
    ``malignancy`` ``None`` (a bundle without one) reads as 0.
    """
    box = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    malignant = np.zeros(len(score)) if malignancy is None else np.asarray(malignancy, float)
    malignant = malignant.reshape(-1)
    if not len(box) == len(score) == len(malignant) == len(labels):
        raise ValueError("boxes, scores, labels and malignancy differ in length")
    if len(box) == 0:
        return np.zeros((0, len(feature_names(classes))))
    rows, columns = input_size
    width = np.clip(box[:, 2] - box[:, 0], 0.0, None)
    height = np.clip(box[:, 3] - box[:, 1], 0.0, None)
    rank = np.argsort(np.argsort(-score, kind="stable"), kind="stable")
    base = np.column_stack(
        [
            score,
            malignant,
            score * malignant,
            np.log1p(width * height),
            width / np.maximum(height, 1.0),
            (box[:, 0] + box[:, 2]) / 2 / columns,
            (box[:, 1] + box[:, 3]) / 2 / rows,
            rank,
            score / max(float(score.max()), 1e-12),
            malignant - malignant.max(),
        ]
    )
    onehot = np.array([[label == name for name in classes] for label in labels], dtype=np.float64)
    return np.column_stack([base, onehot.reshape(len(box), len(classes))])
