"""The breast-level risk model: gradient-boosted trees on :data:`~mammocad.risk.features.FEATURES`,
or a logistic model on the log-odds of a few probability features.

Fitted with scikit-learn's ``HistGradientBoostingClassifier`` (small: depth ≤ 3, few
iterations, no early stopping, so a fit is deterministic), then exported as plain JSON — per
tree the nodes' feature, threshold, missing-value direction, children and leaf values, plus
the baseline log-odds — and applied with numpy. Inference therefore needs neither
scikit-learn nor unpickling (skops is not a dependency; a pickle would run arbitrary code on
load). The export is checked against scikit-learn's own probabilities when it is made.

The logistic model (:class:`LogisticParams`) is
``σ(baseline + Σ_j w_j · logit(clip(x_j)))`` over named features in [0, 1], each weight ≥ 0 so
more evidence never lowers the risk, as the trees' monotone constraint does. It gives every
breast its own score (the trees tie many) and keeps its strongest feature's order; on the
phantom cases it ranked neither better nor worse than the trees (docs/risk.md "Smoother
model"), so the trees stay the default.

The output ``P = σ(baseline + Σ leaf values + Σ linear terms)`` is the *raw* risk score; the
bundle's
calibration (:mod:`mammocad.risk.calibration`), fitted on out-of-fold predictions of held-out
breasts (:func:`fit_risk_model`), maps it to a probability.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mammocad.risk.calibration import Calibrator, fit_calibrator
from mammocad.risk.features import EVIDENCE, FEATURES, columns

FloatArray = npt.NDArray[np.float64]
MODEL_FORMAT = 1
#: written when the model has linear terms, so a reader that knows only trees refuses it
#: instead of silently dropping them
LINEAR_FORMAT = 2
METHOD = "gradient_boosting"
LOGISTIC = "logistic"
#: the linear terms read ``logit(clip(x, LINEAR_CLIP, 1 − LINEAR_CLIP))``: a breast without
#: any candidate (x = 0) gets a finite, lowest score instead of −∞
LINEAR_CLIP = 1e-3
#: the exported trees must reproduce scikit-learn's probabilities to this tolerance
EXPORT_TOLERANCE = 1e-9


@dataclass(frozen=True, kw_only=True)
class BoostParams:
    """``HistGradientBoostingClassifier`` settings; ``folds`` of the cross-fitting that gives
    the calibration its held-out predictions; ``monotonic``: the risk may only rise with the
    :data:`~mammocad.risk.features.EVIDENCE` features."""

    max_iter: int = 20
    max_depth: int = 3
    learning_rate: float = 0.1
    min_samples_leaf: int = 10
    l2_regularization: float = 1.0
    folds: int = 5
    seed: int = 0
    monotonic: bool = True


@dataclass(frozen=True, kw_only=True)
class LogisticParams:
    """Logistic model over the log-odds of ``features`` (each in [0, 1]) with weights ≥ 0 and
    an L2 penalty ``l2`` on the standardised weights; ``folds`` as in :class:`BoostParams`."""

    features: tuple[str, ...] = ("max_candidate_contribution",)
    l2: float = 1.0
    folds: int = 5

    def __post_init__(self) -> None:
        unknown = [name for name in self.features if name not in FEATURES]
        if not self.features or unknown:
            raise ValueError(f"logistic features must be a non-empty subset of FEATURES: {unknown}")


ModelParams = BoostParams | LogisticParams


def log_odds(x: npt.ArrayLike) -> FloatArray:
    """``logit(clip(x, LINEAR_CLIP, 1 − LINEAR_CLIP))``; NaN stays NaN."""
    v = np.clip(np.asarray(x, dtype=np.float64), LINEAR_CLIP, 1.0 - LINEAR_CLIP)
    return np.asarray(np.log(v / (1.0 - v)), dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class Tree:
    """Node arrays of one regression tree; node 0 is the root. ``x[feature] <= threshold``
    goes ``left``; NaN goes left where ``missing_left``."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    missing_left: tuple[bool, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    is_leaf: tuple[bool, ...]
    value: tuple[float, ...]

    def predict(self, x: FloatArray) -> FloatArray:
        """Leaf value reached by each row of ``x`` (``float64[N, F]``)."""
        feature, threshold = np.asarray(self.feature), np.asarray(self.threshold)
        missing_left, leaf = np.asarray(self.missing_left), np.asarray(self.is_leaf)
        left, right = np.asarray(self.left), np.asarray(self.right)
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while not leaf[node].all():
            value = x[rows, feature[node]]
            go_left = np.where(np.isnan(value), missing_left[node], value <= threshold[node])
            step = np.where(go_left, left[node], right[node])
            node = np.where(leaf[node], node, step)
        return np.asarray(self.value, dtype=np.float64)[node]


@dataclass(frozen=True, kw_only=True)
class RiskModel:
    """Exported trees over the named ``features`` (their order is the column order)."""

    features: tuple[str, ...]
    baseline: float
    trees: tuple[Tree, ...]
    method: str = METHOD
    #: weight of each feature's :func:`log_odds` (0: unused); empty: no linear terms
    linear: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.linear and len(self.linear) != len(self.features):
            raise ValueError(f"{len(self.linear)} linear weights for {len(self.features)} features")

    def predict(self, x: npt.ArrayLike) -> FloatArray:
        """Raw risk score in (0, 1) of each row of ``x`` (``float[N, len(features)]``)."""
        rows = np.asarray(x, dtype=np.float64).reshape(-1, len(self.features))
        logit = np.full(len(rows), self.baseline)
        for tree in self.trees:
            logit += tree.predict(rows)
        for column, weight in enumerate(self.linear):
            if weight:  # a missing value adds nothing
                logit += weight * np.nan_to_num(log_odds(rows[:, column]), nan=0.0)
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)

    def predict_rows(self, x: npt.ArrayLike) -> FloatArray:
        """Raw risk score of rows of every feature (``float[N, len(FEATURES)]``, e.g.
        :func:`~mammocad.risk.features.feature_matrix`): the model's own columns by name."""
        rows = np.asarray(x, dtype=np.float64).reshape(-1, len(FEATURES))
        return self.predict(rows[:, columns(self.features)])

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format_version": LINEAR_FORMAT if self.linear else MODEL_FORMAT,
            "method": self.method,
            "features": list(self.features),
            "baseline": self.baseline,
            "trees": [
                {name: list(getattr(tree, name)) for name in Tree.__dataclass_fields__}
                for tree in self.trees
            ],
        }
        if self.linear:
            data["linear"] = {"weights": list(self.linear), "clip": LINEAR_CLIP}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RiskModel:
        if data.get("format_version") not in (MODEL_FORMAT, LINEAR_FORMAT):
            raise ValueError(f"risk model format {data.get('format_version')!r} is not 1 or 2")
        trees = tuple(
            Tree(
                feature=tuple(int(v) for v in tree["feature"]),
                threshold=tuple(float(v) for v in tree["threshold"]),
                missing_left=tuple(bool(v) for v in tree["missing_left"]),
                left=tuple(int(v) for v in tree["left"]),
                right=tuple(int(v) for v in tree["right"]),
                is_leaf=tuple(bool(v) for v in tree["is_leaf"]),
                value=tuple(float(v) for v in tree["value"]),
            )
            for tree in data["trees"]
        )
        features = tuple(str(name) for name in data["features"])
        if any(max(t.feature) >= len(features) or min(t.feature) < 0 for t in trees):
            raise ValueError("a tree splits on a feature the model does not list")
        linear = data.get("linear") or {}
        if linear and float(linear.get("clip", -1.0)) != LINEAR_CLIP:
            raise ValueError(f"linear terms clipped at {linear.get('clip')!r}, not {LINEAR_CLIP}")
        return cls(
            features=features,
            baseline=float(data["baseline"]),
            trees=trees,
            method=str(data.get("method", METHOD)),
            linear=tuple(float(v) for v in linear.get("weights", ())),
        )


@dataclass(frozen=True, kw_only=True)
class FittedRisk:
    """The final model (all rows), its calibration and the out-of-fold raw scores it was
    calibrated on."""

    model: RiskModel
    calibrator: Calibrator
    out_of_fold: FloatArray
    n_breasts: int
    n_positive: int
    #: the study probability's own map (``study_calibration.json``); ``None``: the breast map
    study_calibrator: Calibrator | None = None


def _ensemble() -> Any:
    try:
        import sklearn.ensemble
        import sklearn.model_selection
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "training the risk model needs scikit-learn: pip install 'mammocad[ml]' "
            "(applying one does not)"
        ) from error
    return sklearn


def _without_empty_columns(x: FloatArray) -> FloatArray:
    """``x`` with every all-NaN column set to 0: scikit-learn cannot bin a column with no
    value (a cache without quality scores), and a constant column is never split on, so
    the model ignores that feature at inference as well."""
    empty = np.isnan(x).all(axis=0)
    return np.where(empty, 0.0, x) if empty.any() else x


def _fit_boost(
    x: FloatArray,
    y: npt.NDArray[np.int64],
    params: BoostParams,
    features: tuple[str, ...] = FEATURES,
) -> Any:
    x = _without_empty_columns(x)
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    classifier = _ensemble().ensemble.HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        max_depth=params.max_depth,
        learning_rate=params.learning_rate,
        min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization,
        early_stopping=False,
        random_state=params.seed,
        monotonic_cst=[int(name in EVIDENCE) for name in features] if params.monotonic else None,
    )
    # a few hundred rows: OpenMP threads only add start-up cost, and spin against any other
    # CPU work on the machine (seconds per fit instead of milliseconds)
    with threadpool_limits(limits=1, user_api="openmp"):
        return classifier.fit(x, y)


def export_model(classifier: Any, x: FloatArray, features: tuple[str, ...] = FEATURES) -> RiskModel:
    """The fitted binary ``classifier``'s trees over ``features`` (the columns of ``x``) as a
    :class:`RiskModel`, checked on ``x``.

    Reads scikit-learn's fitted predictor nodes (``_predictors``, ``_baseline_prediction``),
    which are not public API: the check raises rather than ship a model that differs.
    """
    trees = []
    for (predictor,) in classifier._predictors:
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("categorical splits are not exported: use numeric features")
        trees.append(
            Tree(
                feature=tuple(int(v) for v in nodes["feature_idx"]),
                threshold=tuple(float(v) for v in nodes["num_threshold"]),
                missing_left=tuple(bool(v) for v in nodes["missing_go_to_left"]),
                left=tuple(int(v) for v in nodes["left"]),
                right=tuple(int(v) for v in nodes["right"]),
                is_leaf=tuple(bool(v) for v in nodes["is_leaf"]),
                value=tuple(float(v) for v in nodes["value"]),
            )
        )
    baseline = float(np.asarray(classifier._baseline_prediction).reshape(-1)[0])
    model = RiskModel(features=features, baseline=baseline, trees=tuple(trees))
    expected = classifier.predict_proba(x)[:, 1]
    if not np.allclose(model.predict(x), expected, rtol=0.0, atol=EXPORT_TOLERANCE):
        raise RuntimeError(
            "the exported trees do not reproduce scikit-learn's probabilities: this "
            "scikit-learn version stores its trees differently; report it with its version"
        )
    return model


def _checked_rows(
    x: npt.ArrayLike, labels: npt.ArrayLike, groups: Sequence[Hashable], folds: int
) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    rows = np.asarray(x, dtype=np.float64).reshape(-1, len(FEATURES))
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    patients = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
    positives = int(y.sum())
    if len(y) != len(rows) or len(patients) != len(rows):
        raise ValueError(f"{len(rows)} rows, {len(y)} labels and {len(patients)} groups")
    if positives in (0, len(y)) or len(np.unique(patients)) < folds:
        raise ValueError(
            f"{len(y)} breasts ({positives} malignant) of {len(np.unique(patients))} patients: "
            f"the risk model needs both classes and at least {folds} patients"
        )
    return rows, y, patients


def fit_logistic(x: npt.ArrayLike, labels: npt.ArrayLike, params: LogisticParams) -> RiskModel:
    """The logistic model of ``params`` fitted on all rows ``x`` (``float[N, len(FEATURES)]``).

    Weights ≥ 0 (L-BFGS-B with bounds, scipy): on the log-odds scale a negative weight would
    let a stronger candidate lower the risk, which neither a radiologist nor the trees'
    monotone constraint allow. Missing values (NaN) add nothing, as at inference.

    Raises:
        ValueError: a feature with values outside [0, 1] (log-odds are not defined there).
    """
    from scipy.optimize import minimize  # installed with scikit-learn

    rows = np.asarray(x, dtype=np.float64).reshape(-1, len(FEATURES))
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    used = rows[:, [FEATURES.index(name) for name in params.features]]
    if np.nanmin(used, initial=0.0) < 0.0 or np.nanmax(used, initial=1.0) > 1.0:
        raise ValueError(f"logistic features {params.features} must lie in [0, 1]")
    z = np.nan_to_num(log_odds(used), nan=0.0)
    centre, scale = z.mean(axis=0), z.std(axis=0) + 1e-9
    standard = (z - centre) / scale

    def loss(w: FloatArray) -> tuple[float, FloatArray]:
        logit = w[0] + standard @ w[1:]
        residual = 1.0 / (1.0 + np.exp(-logit)) - y
        value = np.sum(np.logaddexp(0.0, logit) - y * logit) + 0.5 * params.l2 * w[1:] @ w[1:]
        gradient = np.concatenate([[residual.sum()], standard.T @ residual + params.l2 * w[1:]])
        return float(value), gradient

    bounds = [(None, None)] + [(0.0, None)] * len(params.features)
    fitted = minimize(loss, np.zeros(len(bounds)), jac=True, method="L-BFGS-B", bounds=bounds)
    weights = fitted.x[1:] / scale
    return RiskModel(
        features=params.features,
        baseline=float(fitted.x[0] - weights @ centre),
        trees=(),
        method=LOGISTIC,
        linear=tuple(float(w) for w in weights),
    )


def fit_model(
    x: npt.ArrayLike, labels: npt.ArrayLike, *, params: ModelParams | None = None
) -> RiskModel:
    """The exported model of ``params`` (boosted trees by default) fitted on all rows."""
    if isinstance(params, LogisticParams):
        return fit_logistic(x, labels, params)
    return fit_boosted(x, labels, params=params)


def cross_fit(
    x: npt.ArrayLike,
    labels: npt.ArrayLike,
    groups: Sequence[Hashable],
    *,
    params: ModelParams | None = None,
) -> FloatArray:
    """Out-of-fold raw scores: each breast scored by a model fitted without its patient
    (``groups``: patient ids, ``params.folds`` group folds).

    Raises:
        ValueError: one class only, or fewer patients than folds.
    """
    params = params or BoostParams()
    rows, y, patients = _checked_rows(x, labels, groups, params.folds)
    out_of_fold = np.zeros(len(y))
    splitter = _ensemble().model_selection.GroupKFold(n_splits=params.folds)
    for train, held_out in splitter.split(rows, y, patients):
        if np.unique(y[train]).size < 2:
            out_of_fold[held_out] = y[train].mean()  # one class seen: its rate is all we know
            continue
        if isinstance(params, LogisticParams):
            model = fit_logistic(rows[train], y[train], params)
            out_of_fold[held_out] = model.predict_rows(rows[held_out])
        else:
            classifier = _fit_boost(rows[train], y[train], params)
            out_of_fold[held_out] = classifier.predict_proba(rows[held_out])[:, 1]
    return out_of_fold


def fit_boosted(
    x: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    params: BoostParams | None = None,
    features: tuple[str, ...] = FEATURES,
) -> RiskModel:
    """The exported model fitted on all rows ``x`` (``float[N, len(features)]``); other
    ``features`` than the breast ones serve other tree models (:mod:`mammocad.ranker`)."""
    rows = np.asarray(x, dtype=np.float64).reshape(-1, len(features))
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    classifier = _fit_boost(rows, y, params or BoostParams(), features)
    return export_model(classifier, _without_empty_columns(rows), features)


def fit_risk_model(
    x: npt.ArrayLike,
    labels: npt.ArrayLike,
    groups: Sequence[Hashable],
    *,
    params: ModelParams | None = None,
    source: str = "",
) -> FittedRisk:
    """Fit the risk model on breast rows ``x`` (``float[N, len(FEATURES)]``) with labels
    (1 malignant) and ``groups`` (patient ids: a patient's breasts stay in one fold).

    The calibration (Platt or isotonic, :func:`~mammocad.risk.calibration.fit_calibrator`'s
    choice) is fitted on the :func:`cross_fit` scores — each breast scored by a model that
    did not see its patient — so it learns how the model does on new breasts, not on its
    training rows.

    Raises:
        ValueError: one class only, or fewer patients than folds.
        CalibrationError: too few breasts (of a class) to calibrate, or out-of-fold scores
            that do not rank malignant breasts higher (the model learned nothing).
    """
    params = params or BoostParams()
    out_of_fold = cross_fit(x, labels, groups, params=params)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    calibrator = fit_calibrator(out_of_fold, y, source=source or "out-of-fold risk scores")
    return FittedRisk(
        model=fit_model(x, y, params=params),
        calibrator=calibrator,
        out_of_fold=out_of_fold,
        n_breasts=len(y),
        n_positive=int(y.sum()),
    )
