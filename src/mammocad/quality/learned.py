"""The learned half of the quality gate: multinomial logistic regression over
:data:`~mammocad.quality.features.FEATURE_NAMES`, stored as plain JSON.

No pickle and no scikit-learn at inference: the file holds the feature names, the
standardisation (mean, scale, clip), one coefficient row and intercept per class, the
refusal threshold and a description of how it was trained. ``predict_proba`` is
``softmax(clip((x - mean) / scale) @ coef.T + intercept)``, exactly what scikit-learn's
``LogisticRegression.predict_proba`` computes on the standardised, clipped features.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Self

import numpy as np

from mammocad.quality.features import FEATURE_NAMES
from mammocad.structures import FloatArray

FORMAT = "mammocad-quality-logreg/1"
GOOD = "good"  # the class label of an image fit to read; every other label is an issue code
SHIPPED = "model/quality-model.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityModel:
    """A fitted model: ``coef`` is ``float64[n_classes, n_features]``, ``classes[0]`` is
    :data:`GOOD`, and an image is refused by the model when P(not good) >= ``refuse_probability``.
    """

    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    mean: FloatArray
    scale: FloatArray
    clip: float
    coef: FloatArray
    intercept: FloatArray
    refuse_probability: float
    description: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_classes, n_features = len(self.classes), len(self.feature_names)
        if self.classes[:1] != (GOOD,):
            raise ValueError(f"the first class must be {GOOD!r}, got {self.classes[:1]}")
        shapes = {
            "mean": (self.mean.shape, (n_features,)),
            "scale": (self.scale.shape, (n_features,)),
            "coef": (self.coef.shape, (n_classes, n_features)),
            "intercept": (self.intercept.shape, (n_classes,)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"{name} has shape {got}, expected {want}")
        if not np.all(self.scale > 0):
            raise ValueError("every feature scale must be positive")
        if not 0.0 < self.refuse_probability <= 1.0:
            raise ValueError(
                f"refuse_probability must lie in (0, 1], got {self.refuse_probability}"
            )

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """``float64[n, n_classes]`` probabilities of the feature rows ``x[n, n_features]``."""
        rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if rows.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features, got {rows.shape[1]}")
        z = np.clip((rows - self.mean) / self.scale, -self.clip, self.clip)
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)  # overflow guard; softmax is shift-free
        expo = np.exp(logits)
        return np.asarray(expo / expo.sum(axis=1, keepdims=True), dtype=np.float64)

    def assess(self, x: FloatArray) -> tuple[float, str]:
        """P(defective) of one feature vector and the most likely defect code."""
        proba = self.predict_proba(x)[0]
        defect = 1 + int(np.argmax(proba[1:]))
        return float(1.0 - proba[0]), self.classes[defect]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "feature_names": list(self.feature_names),
            "classes": list(self.classes),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "clip": self.clip,
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "refuse_probability": self.refuse_probability,
            "description": dict(self.description),
        }

    @property
    def digest(self) -> str:
        """sha256 of the model's content: what a risk model trained on its scores records
        (the gate's scores are features of the risk model) and case caches are keyed on."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; ``ValueError`` when the file is of another format or
        was trained on other features than this mammocad version computes."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} quality model (format {data.get('format')!r})")
        names = tuple(data["feature_names"])
        if names != FEATURE_NAMES:
            raise ValueError(
                "the quality model was trained on other features than this mammocad version "
                "computes; retrain it with `mammocad train quality`"
            )
        return cls(
            feature_names=names,
            classes=tuple(data["classes"]),
            mean=_array(data["mean"]),
            scale=_array(data["scale"]),
            clip=float(data["clip"]),
            coef=_array(data["coef"]),
            intercept=_array(data["intercept"]),
            refuse_probability=float(data["refuse_probability"]),
            description=dict(data.get("description", {})),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _array(values: Sequence[Any]) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


@cache
def shipped_model() -> QualityModel:
    """The model shipped in the package (``quality/model/quality-model.json``), read once."""
    text = files("mammocad.quality").joinpath(SHIPPED).read_text(encoding="utf-8")
    return QualityModel.from_dict(json.loads(text))
