"""Calibration of the breast and study probability: a monotone map from the aggregate's raw
score in [0, 1] to a probability of malignancy, stored in the model bundle as
``calibration.json`` and applied before rounding (docs/calibration.md).

Methods:

* ``isotonic`` — scikit-learn's ``IsotonicRegression`` (pool-adjacent-violators), stored as
  breakpoints and applied with :func:`numpy.interp`, so inference needs neither scikit-learn nor
  a pickle. Isotonic regression is a step function: every study inside a step gets the same
  probability, which ties malignant with benign studies and costs AUC — and the 2-decimal
  rounding users see makes that worse. Three things keep the map strictly increasing:

  - each step is replaced by one knot at the mean score of its studies, with linear
    interpolation between knots ("centred isotonic regression", Oron & Flournoy, Stat
    Biopharm Res 2017);
  - each step's rate of malignancy is shrunk towards the Platt fit's by
    :data:`PRIOR_STUDIES` pseudo-studies, so no step claims exactly 0 or 1 (a bottom step of
    a hundred benign breasts says "rare", not "impossible"), and pooled again where that
    breaks the order;
  - beyond the outermost knots (``tails`` ``platt``) the map continues with the Platt fit's
    slope on the logit scale, anchored at the end knot, instead of staying flat: the
    highest-scoring studies of new data, above every training score, are no longer tied.

  A strictly increasing map keeps the order of the raw scores, so the AUC before rounding is
  exactly the raw AUC. Files written before the tails existed (``tails`` ``flat``: knots
  padded to 0 and 1, 2 % of the Platt map blended in) load and apply as before.
* ``platt`` — logistic regression on ``logit(score)`` (Platt 1999), stored as slope and
  intercept: ``p = σ(slope · logit(s) + intercept)``.
* ``identity`` — ``p = s``; what a bundle without ``calibration.json`` does.

``auto`` picks isotonic with at least :data:`ISOTONIC_MIN_STUDIES` studies of which at least
:data:`ISOTONIC_MIN_POSITIVES` are malignant, else Platt: isotonic has one free value per step
and overfits small sets, Platt has two parameters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mammocad.errors import MammocadError, ModelBundleError

FloatArray = npt.NDArray[np.float64]

CALIBRATION_FILE = "calibration.json"
#: the study-level map, where the bundle has one (docs/calibration.md "Study calibration"): a
#: study's probability is P(any breast malignant), which the breast map of its highest breast
#: underestimates; without it the breast map serves both, as before
STUDY_CALIBRATION_FILE = "study_calibration.json"
FORMAT_VERSION = 1
#: refuse to fit on fewer studies / fewer of either class: the fit would be noise
MIN_STUDIES = 20
MIN_PER_CLASS = 5
#: ``auto`` uses isotonic from this many studies and malignant studies on
ISOTONIC_MIN_STUDIES = 200
ISOTONIC_MIN_POSITIVES = 20
#: weight, in studies, of the Platt fit's rate in each isotonic step's rate: enough that a
#: step of a few studies cannot claim 0 or 1, too little to move a step of dozens
PRIOR_STUDIES = 2.0
#: scores are clipped to [ε, 1 − ε] before the logit, so 0 and 1 stay finite; tiny, because
#: an untrained or weak detector's scores bunch near 0 and must not be tied by the clip
LOGIT_EPS = 1e-12


class CalibrationError(MammocadError):
    """A calibration cannot be fitted on the data given (too few studies, one class…)."""


class CalibrationMethod(str, Enum):
    ISOTONIC = "isotonic"
    PLATT = "platt"
    IDENTITY = "identity"


class Tails(str, Enum):
    """How an isotonic map goes on beyond its outermost knots."""

    #: constant (knots padded to raw 0 and 1): files written before ``platt`` tails existed
    FLAT = "flat"
    #: the Platt slope on the logit scale, anchored at the end knot: strictly increasing
    PLATT = "platt"


def logit(scores: npt.ArrayLike) -> FloatArray:
    clipped = np.clip(np.asarray(scores, dtype=np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.asarray(np.log(clipped) - np.log1p(-clipped), dtype=np.float64)


def _sigmoid(values: FloatArray) -> FloatArray:
    # exp of −|x| only: no overflow, and tiny probabilities stay distinct instead of 0.0
    small = np.exp(-np.abs(values))
    return np.asarray(np.where(values >= 0, 1.0 / (1.0 + small), small / (1.0 + small)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibrator:
    """Raw aggregate score in [0, 1] → calibrated probability in [0, 1], non-decreasing.

    ``knots_x`` / ``knots_y`` are the isotonic knots (raw score → probability, ``x`` strictly
    increasing; with ``tails`` ``flat`` spanning 0 … 1, with ``platt`` inside (0, 1) with ``y``
    strictly inside (0, 1)); ``slope`` / ``intercept`` the Platt map on ``logit(score)``, used
    alone by ``platt``, for the ``platt`` tails of ``isotonic``, and blended with weight
    ``blend`` into it. ``n_studies``, ``n_positive``, ``fitted`` (ISO date) and ``source`` say
    what it was fitted on.
    """

    method: CalibrationMethod
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()
    slope: float = 1.0
    intercept: float = 0.0
    blend: float = 0.0
    tails: Tails = Tails.FLAT
    n_studies: int = 0
    n_positive: int = 0
    fitted: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        numbers = (*self.knots_x, *self.knots_y, self.slope, self.intercept, self.blend)
        if not np.all(np.isfinite(numbers)):
            # NaN passes every comparison below, and a probability of NaN is written to
            # result.json as a bare NaN, which no JSON reader accepts
            raise ValueError("calibration knots and Platt parameters must be finite numbers")
        if self.method is not CalibrationMethod.IDENTITY and not self.slope > 0:
            raise ValueError(f"the Platt slope must be > 0 (a decreasing map), got {self.slope}")
        if not 0.0 <= self.blend < 1.0:
            raise ValueError(f"blend must be in [0, 1), got {self.blend}")
        if self.method is CalibrationMethod.ISOTONIC:
            self._check_knots()

    def _check_knots(self) -> None:
        x, y = np.asarray(self.knots_x), np.asarray(self.knots_y)
        if len(x) != len(y) or len(x) < (2 if self.tails is Tails.FLAT else 1):
            raise ValueError(
                "isotonic calibration needs ≥ 2 knots (1 with platt tails), as many x as y"
            )
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("isotonic knots must have increasing x and non-decreasing y")
        if self.tails is Tails.FLAT:
            if x[0] > 0.0 or x[-1] < 1.0 or y.min() < 0.0 or y.max() > 1.0:
                raise ValueError("isotonic knots must span x in [0, 1] with y in [0, 1]")
        elif x[0] < 0.0 or x[-1] > 1.0 or y.min() <= 0.0 or y.max() >= 1.0:
            raise ValueError("with platt tails, knots need x in [0, 1] and y strictly in (0, 1)")

    @property
    def calibrated(self) -> bool:
        return self.method is not CalibrationMethod.IDENTITY

    def apply(self, scores: npt.ArrayLike) -> FloatArray:
        """Calibrated probabilities of ``scores`` (clipped to [0, 1] first), same shape."""
        raw = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
        if self.method is CalibrationMethod.IDENTITY:
            return raw
        platt = _sigmoid(self.slope * logit(raw) + self.intercept)
        if self.method is CalibrationMethod.PLATT:
            return platt
        isotonic = np.interp(raw, self.knots_x, self.knots_y)
        if self.tails is Tails.PLATT:
            isotonic = self._platt_tails(raw, isotonic)
        return np.asarray(
            np.clip((1.0 - self.blend) * isotonic + self.blend * platt, 0.0, 1.0),
            dtype=np.float64,
        )

    def _platt_tails(self, raw: FloatArray, inside: FloatArray) -> FloatArray:
        """``inside`` (the interpolated knots) with the scores beyond the end knots replaced by
        ``σ(logit(y_end) + slope · (logit(raw) − logit(x_end)))``."""
        z = logit(raw)
        below = _sigmoid(logit(self.knots_y[0]) + self.slope * (z - logit(self.knots_x[0])))
        above = _sigmoid(logit(self.knots_y[-1]) + self.slope * (z - logit(self.knots_x[-1])))
        low, high = raw < self.knots_x[0], raw > self.knots_x[-1]
        return np.asarray(np.where(low, below, np.where(high, above, inside)), dtype=np.float64)

    def apply_one(self, score: float | None) -> float | None:
        """:meth:`apply` for one probability; ``None`` (nothing processed) stays ``None``."""
        return None if score is None else float(self.apply(score))

    def describe(self) -> str:
        """One line for the console and the model card."""
        fitted = f", fitted on {self.n_studies} studies ({self.n_positive} malignant)"
        return f"{self.method.value}{fitted if self.n_studies else ''}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "method": self.method.value,
            "parameters": {
                "knots_x": list(self.knots_x),
                "knots_y": list(self.knots_y),
                "slope": self.slope,
                "intercept": self.intercept,
                "blend": self.blend,
                "tails": self.tails.value,
            },
            "fitted_on": {"n_studies": self.n_studies, "n_positive": self.n_positive},
            "fitted": self.fitted,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"calibration format {data.get('format_version')!r} is not 1")
        parameters, counts = data.get("parameters", {}), data.get("fitted_on", {})
        return cls(
            method=CalibrationMethod(data["method"]),
            knots_x=tuple(float(v) for v in parameters.get("knots_x", ())),
            knots_y=tuple(float(v) for v in parameters.get("knots_y", ())),
            slope=float(parameters.get("slope", 1.0)),
            intercept=float(parameters.get("intercept", 0.0)),
            blend=float(parameters.get("blend", 0.0)),
            tails=Tails(parameters.get("tails", Tails.FLAT.value)),
            n_studies=int(counts.get("n_studies", 0)),
            n_positive=int(counts.get("n_positive", 0)),
            fitted=str(data.get("fitted", "")),
            source=str(data.get("source", "")),
        )


IDENTITY = Calibrator(method=CalibrationMethod.IDENTITY)


def save_calibration(
    calibrator: Calibrator,
    bundle: str | Path,
    *,
    extra: Mapping[str, Any] | None = None,
    name: str = CALIBRATION_FILE,
) -> Path:
    """Write ``name`` (``calibration.json`` or ``study_calibration.json``) into the bundle
    folder ``bundle``; ``extra`` (for example the operating points and metrics on the fitting
    data) is recorded beside the parameters and ignored when loading."""
    path = Path(bundle) / name
    data = {**calibrator.to_dict(), **(extra or {})}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def load_calibration(bundle: str | Path, name: str = CALIBRATION_FILE) -> Calibrator | None:
    """The calibration ``name`` of the bundle folder ``bundle``; ``None`` when it has none.

    Raises:
        ModelBundleError: the file exists but cannot be read.
    """
    path = Path(bundle) / name
    if not path.is_file():
        return None
    try:
        return Calibrator.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ModelBundleError(
            f"{path} is invalid ({error}); run `mammocad calibrate` again or delete the file "
            "to use uncalibrated probabilities"
        ) from error


def choose_method(n_studies: int, n_positive: int) -> CalibrationMethod:
    """``auto``: isotonic for large sets with enough malignant studies, else Platt."""
    if n_studies >= ISOTONIC_MIN_STUDIES and n_positive >= ISOTONIC_MIN_POSITIVES:
        return CalibrationMethod.ISOTONIC
    return CalibrationMethod.PLATT


def fit_calibrator(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    method: CalibrationMethod | None = None,
    source: str = "",
) -> Calibrator:
    """Fit a calibration on raw scores in [0, 1] and labels (1 malignant, 0 benign).

    ``method`` ``None`` chooses with :func:`choose_method`. ``identity`` is not fitted.

    Raises:
        CalibrationError: fewer than :data:`MIN_STUDIES` studies or :data:`MIN_PER_CLASS` of a
            class, or scores that do not rank malignant studies higher (Platt slope ≤ 0).
    """
    score, label = _checked(scores, labels)
    n_positive = int(label.sum())
    chosen = method or choose_method(len(score), n_positive)
    if chosen is CalibrationMethod.IDENTITY:
        raise ValueError("the identity calibration is not fitted: use IDENTITY")
    slope, intercept = _fit_platt(score, label)
    common: dict[str, Any] = {
        "slope": slope,
        "intercept": intercept,
        "n_studies": len(score),
        "n_positive": n_positive,
        "fitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
    }
    if chosen is CalibrationMethod.PLATT:
        return Calibrator(method=chosen, **common)
    platt = _sigmoid(slope * logit(score) + intercept)
    knots_x, knots_y = _centred_isotonic_knots(score, label, platt)
    return Calibrator(method=chosen, knots_x=knots_x, knots_y=knots_y, tails=Tails.PLATT, **common)


def _checked(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    label = np.asarray(labels, dtype=np.float64).reshape(-1)
    if len(score) != len(label):
        raise ValueError(f"{len(score)} scores for {len(label)} labels")
    if not np.all(np.isfinite(score)) or np.any((score < 0) | (score > 1)):
        raise ValueError("raw scores must be finite and in [0, 1]")
    if not np.all(np.isin(label, (0, 1))):
        raise ValueError("labels must be 0 (benign) or 1 (malignant)")
    n_positive = int(label.sum())
    n_negative = len(label) - n_positive
    if len(score) < MIN_STUDIES or min(n_positive, n_negative) < MIN_PER_CLASS:
        raise CalibrationError(
            f"calibration needs at least {MIN_STUDIES} labelled studies with at least "
            f"{MIN_PER_CLASS} malignant and {MIN_PER_CLASS} benign ones; got {len(score)} "
            f"({n_positive} malignant, {n_negative} benign). Add labelled studies "
            f"(isotonic needs {ISOTONIC_MIN_STUDIES} with {ISOTONIC_MIN_POSITIVES} malignant)."
        )
    return score, label


def _sklearn() -> Any:
    try:
        import sklearn.isotonic
        import sklearn.linear_model
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "fitting a calibration needs scikit-learn: pip install 'mammocad[ml]' "
            "(applying one does not)"
        ) from error
    return sklearn


def _fit_platt(score: FloatArray, label: FloatArray) -> tuple[float, float]:
    """Slope and intercept of ``σ(a · logit(s) + b)``.

    The logit is standardised for the fit: the default L2 penalty then keeps the slope finite
    when the classes separate perfectly (a step function would tie everything at 0 and 1 after
    rounding) without shrinking a narrow score range to a constant.
    """
    z = logit(score)
    centre, spread = float(z.mean()), float(z.std())
    if spread == 0.0:
        raise CalibrationError(
            "every study has the same raw score: there is nothing to calibrate; check that the "
            "results come from a working model"
        )
    model = _sklearn().linear_model.LogisticRegression(C=1.0)
    model.fit(((z - centre) / spread).reshape(-1, 1), label.astype(np.int64))
    coefficient, offset = float(model.coef_[0, 0]), float(model.intercept_[0])
    if coefficient <= 0.0:
        raise CalibrationError(
            "the raw scores do not rank malignant studies above benign ones (fitted slope "
            f"{coefficient:.3g} ≤ 0): check that the labels belong to these results"
        )
    return coefficient / spread, offset - coefficient * centre / spread


def _centred_isotonic_knots(
    score: FloatArray, label: FloatArray, platt: FloatArray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """One knot per isotonic step at the mean raw score of its studies, its value the step's
    malignant rate shrunk towards the mean Platt probability ``platt`` of its studies by
    :data:`PRIOR_STUDIES`; steps that shrinking puts out of order are pooled again (weighted
    by their studies) and merged."""
    isotonic = _sklearn().isotonic.IsotonicRegression
    fitted = np.asarray(
        isotonic(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(score, label),
        dtype=np.float64,
    )
    steps = [fitted == value for value in np.unique(fitted)]  # one mask per step
    counts = np.array([float(step.sum()) for step in steps])
    centres = np.array([score[step].mean() for step in steps])
    shrunk = np.array(
        [
            (label[step].sum() + PRIOR_STUDIES * platt[step].mean()) / (n + PRIOR_STUDIES)
            for step, n in zip(steps, counts, strict=True)
        ]
    )
    pooled = isotonic().fit_transform(centres, shrunk, sample_weight=counts + PRIOR_STUDIES)
    values = np.unique(pooled)
    xs = [float(np.average(centres[pooled == v], weights=counts[pooled == v])) for v in values]
    return tuple(xs), tuple(float(v) for v in values)
