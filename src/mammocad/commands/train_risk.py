"""``mammocad train risk``: fit the breast-level risk model on a bundle's outputs over phantom
studies and write a copy of the bundle with it (docs/risk.md).

Steps: run the bundle's detector over every ``--data`` and ``--val`` study, with the cache
of ``mammocad train fusion`` (:mod:`mammocad.fuse.collect`; a fusion run's cache is reused
when the bundle, candidate score and phantom specs match); with the bundle's fusion weights,
refine the cases as the pipeline does — the training breasts with modules retrained without
their patient (:func:`cross_fitted_fusion`), since the bundle's own module may have been
trained on them; fit the model and its calibration on out-of-fold
scores (:func:`mammocad.risk.model.fit_risk_model`'s recipe); report the out-of-fold and
validation breast- and study-level AUC of today's aggregation against the risk model; write
``OUT/bundle`` (the source bundle is only read) and ``OUT/risk_report.json``. When the
calibration refuses (too few breasts, or out-of-fold scores that rank malignant breasts
lower), the report is written with the error and no bundle. The bundle's suspicion thresholds
(``intermediate`` at 90 % sensitivity, ``high`` at 90 % specificity) are chosen on the
out-of-fold study probabilities as users see them (rounded), as ``mammocad calibrate``
chooses a site's. Two maps are fitted on the out-of-fold scores: the breasts' against breast
labels (``calibration.json``) and the studies' — raw study score, the maximum over the
breasts, against "any breast malignant" — (``study_calibration.json``, docs/calibration.md).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console

from mammocad.commands.train_fusion import (
    auc_dict,
    collection_pipeline,
    gather,
    phantom_specs,
    refuse_source_as_output,
)
from mammocad.datasets.spec import DataSpec, refuse_shared_data
from mammocad.detect.bundle import read_manifest, write_manifest
from mammocad.eval.calibration import expected_calibration_error
from mammocad.eval.study_metrics import roc_auc_with_ci, rounding_effect
from mammocad.fuse.apply import refine_cases
from mammocad.fuse.bundle import LoadedFusion, copy_bundle, load_fusion
from mammocad.fuse.data import BreastCase
from mammocad.fuse.model import FusionConfig
from mammocad.fuse.train import TrainParams, train_fusion
from mammocad.quality import shipped_model
from mammocad.risk.aggregate import OUTPUT_DECIMALS, study_probability
from mammocad.risk.apply import case_inputs
from mammocad.risk.bundle import load_risk, save_risk
from mammocad.risk.calibration import CalibrationError, fit_calibrator
from mammocad.risk.features import FEATURES, feature_matrix
from mammocad.risk.model import (
    BoostParams,
    FittedRisk,
    ModelParams,
    RiskModel,
    cross_fit,
    fit_model,
)
from mammocad.risk.operating_points import choose_operating_points

FloatArray = npt.NDArray[np.float64]
#: today's aggregation of a breast is one of the features
BASELINE = FEATURES.index("breast_probability")


@dataclass(frozen=True, kw_only=True)
class RiskRun:
    model: Path
    data: Sequence[DataSpec]
    val: Sequence[DataSpec]
    out_dir: Path
    cache_dir: Path | None = None  # None: OUT/cache
    #: None: the bundle's fusion candidate score, else its risk model's, else the finding
    #: threshold
    candidate_score: float | None = None
    params: ModelParams = field(default_factory=BoostParams)
    bootstrap: int = 1000
    device: str = "cpu"
    threads: int | None = None


@dataclass(frozen=True, kw_only=True)
class Rows:
    """Labelled breasts as features, labels, patients and studies (same order)."""

    x: FloatArray
    labels: npt.NDArray[np.int64]
    patients: list[str]
    studies: list[str]


def case_rows(
    cases: Sequence[BreastCase],
    fusion: LoadedFusion | None,
    *,
    cross_fit_folds: int | None = None,
) -> Rows:
    """Features of the labelled ``cases`` as the pipeline computes them (fusion refines the
    findings first where the bundle has it: with the bundle's module, or with
    ``cross_fit_folds`` modules each retrained without the case's patient)."""
    labelled = [case for case in cases if case.label is not None]
    fused: list[float | None] = [None] * len(labelled)
    if fusion is not None and cross_fit_folds:
        fused = [*cross_fitted_fusion(fusion, labelled, folds=cross_fit_folds)]
    elif fusion is not None:
        fused = [*refine_cases(fusion, labelled)]
    inputs = [
        case_inputs(case, fused_probability=p) for case, p in zip(labelled, fused, strict=True)
    ]
    return Rows(
        x=feature_matrix(inputs),
        labels=np.array([int(case.label or 0) for case in labelled], dtype=np.int64),
        patients=[case.patient_id for case in labelled],
        studies=[case.study_instance_uid for case in labelled],
    )


def cross_fitted_fusion(
    fusion: LoadedFusion, cases: Sequence[BreastCase], *, folds: int
) -> list[float]:
    """Fused probabilities of ``cases`` (labelled; findings refined in place, as
    :func:`mammocad.fuse.apply.refine_cases`) where each case is refined by a module of the
    bundle's configuration and training parameters retrained on the other folds' patients.

    A risk model stacked on fused outputs of the fusion module's own training breasts learns
    in-sample confidence: on the 0.4.0 data it scored 0.99 out-of-fold and 0.65 on validation
    (docs/risk.md). Cross-fitting gives it the outputs it will see on new patients.
    """
    params = TrainParams(**fusion.section.get("training_data", {}).get("params", {}))
    return out_of_fold_fusion(cases, fusion.model.config, params, folds=folds)


def out_of_fold_fusion(
    cases: Sequence[BreastCase], config: FusionConfig, params: TrainParams, *, folds: int
) -> list[float]:
    """Each labelled case's fused probability from a module (``config``, ``params``) trained
    on the other ``folds`` − 1 folds of patients; findings refined in place."""
    from sklearn.model_selection import GroupKFold  # training needs the [ml] extra anyway

    splitter = GroupKFold(n_splits=folds)
    groups = [case.patient_id for case in cases]
    fused = [0.0] * len(cases)
    for train_rows, held_out in splitter.split(np.zeros(len(cases)), groups=groups):
        module = train_fusion([cases[i] for i in train_rows], config, params).model
        held = LoadedFusion(model=module, candidate_score=0.0, section={})
        refined = refine_cases(held, [cases[i] for i in held_out])
        for row, probability in zip(held_out, refined, strict=True):
            fused[row] = probability
    return fused


def compare(
    rows: Rows, scores: dict[str, FloatArray], *, bootstrap: int, prefix: str
) -> dict[str, Any]:
    """Breast-level and study-level (max over breasts) AUC with patient-cluster bootstrap
    95% CIs of each named score."""
    metrics: dict[str, Any] = {}
    order = list(dict.fromkeys(rows.studies))
    index = np.array([order.index(uid) for uid in rows.studies])
    study_labels = np.zeros(len(order), dtype=np.int64)
    np.maximum.at(study_labels, index, rows.labels)
    patient_of = dict(zip(rows.studies, rows.patients, strict=True))
    for name, score in scores.items():
        breast = roc_auc_with_ci(score, rows.labels, rows.patients, n_bootstrap=bootstrap)
        per_study = np.zeros(len(order))
        np.maximum.at(per_study, index, score)
        study = roc_auc_with_ci(
            per_study, study_labels, [patient_of[u] for u in order], n_bootstrap=bootstrap
        )
        metrics[f"{prefix}_breast_auc/{name}"] = auc_dict(breast)
        metrics[f"{prefix}_study_auc/{name}"] = auc_dict(study)
    return metrics


def study_raw_scores(
    out_of_fold: FloatArray, rows: Rows
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Out-of-fold raw study scores (the maximum over each study's breasts, as the pipeline's
    ``raw_probability``) and the study labels (any breast malignant)."""
    order = list(dict.fromkeys(rows.studies))
    index = np.array([order.index(uid) for uid in rows.studies])
    raw = np.zeros(len(order))
    np.maximum.at(raw, index, out_of_fold)
    labels = np.zeros(len(order), dtype=np.int64)
    np.maximum.at(labels, index, rows.labels)
    return raw, labels


def _metrics(
    out_of_fold: FloatArray, model: RiskModel, train: Rows, val: Rows | None, bootstrap: int
) -> dict[str, Any]:
    """AUCs of the raw risk scores: the calibration is strictly increasing, so they are the
    calibrated probabilities' AUCs too (before the 2-decimal rounding)."""
    scores = {"aggregation": train.x[:, BASELINE], "risk_model": out_of_fold}
    metrics = compare(train, scores, bootstrap=bootstrap, prefix="train_out_of_fold")
    if val is not None and len(val.labels):
        scores = {"aggregation": val.x[:, BASELINE], "risk_model": model.predict_rows(val.x)}
        metrics.update(compare(val, scores, bootstrap=bootstrap, prefix="val"))
    return metrics


def run_train_risk(run: RiskRun, *, console: Console | None = None) -> dict[str, Any]:
    """Fit, evaluate and write the bundle; returns the report (also in risk_report.json)."""
    console = console or Console(stderr=True)
    train_specs, val_specs = phantom_specs(run.data), phantom_specs(run.val)
    refuse_shared_data(run.data, run.val)
    refuse_source_as_output(run.model, run.out_dir)
    start = time.perf_counter()
    fusion = load_fusion(run.model)
    candidate = run.candidate_score
    if candidate is None and fusion is not None:
        candidate = fusion.candidate_score
    if candidate is None and (kept := load_risk(run.model)) is not None:
        # retraining a bundle's risk model: its candidates (0.01 for the shipped one), not
        # the finding threshold, unless told otherwise
        candidate = kept.candidate_score
    pipeline = collection_pipeline(
        run.model, candidate_score=candidate, device=run.device, threads=run.threads
    )
    cache = run.cache_dir or run.out_dir / "cache"
    train_cases = gather(pipeline, train_specs, cache, console, "train")
    train = case_rows(train_cases, fusion, cross_fit_folds=run.params.folds)
    val_cases = gather(pipeline, val_specs, cache, console, "val") if val_specs else []
    val = case_rows(val_cases, fusion) if val_specs else None
    collected = time.perf_counter() - start
    out_of_fold = cross_fit(train.x, train.labels, train.patients, params=run.params)
    model = fit_model(train.x, train.labels, params=run.params)
    metrics = _metrics(out_of_fold, model, train, val, run.bootstrap)
    training_data = {
        "train": [spec.describe() for spec in run.data],
        "validation": [spec.describe() for spec in run.val],
        "fusion": fusion is not None,
        "params": {"kind": type(run.params).__name__, **asdict(run.params)},
    }
    report: dict[str, Any] = {
        "source_bundle": str(run.model),
        "bundle": None,
        "training_data": training_data,
        "train_breasts": len(train.labels),
        "train_malignant_breasts": int(train.labels.sum()),
        "val_breasts": 0 if val is None else len(val.labels),
        "val_malignant_breasts": 0 if val is None else int(val.labels.sum()),
        "calibration": None,
        "metrics": metrics,
        "seconds": {
            "collect": round(collected, 1),
            "fit": round(time.perf_counter() - start - collected, 1),
        },
        "machine": f"{platform.node()} {platform.machine()} ({platform.processor() or '?'})",
    }
    for name, value in metrics.items():
        console.print(f"{name}: {value['value']} [{value['ci_low']}, {value['ci_high']}]")
    try:
        calibrator = fit_calibrator(out_of_fold, train.labels, source="mammocad train risk")
        # the study's probability is P(any breast malignant): its own map, fitted on the
        # out-of-fold raw study scores against study labels (docs/calibration.md)
        study_raw, study_labels = study_raw_scores(out_of_fold, train)
        study_calibrator = fit_calibrator(
            study_raw, study_labels, source="mammocad train risk (studies)"
        )
    except CalibrationError as error:
        message = (
            f"no bundle written: the risk model's out-of-fold breast scores cannot be "
            f"calibrated ({error}). On these breasts it learned nothing that holds for unseen "
            f"patients; the AUCs are in {run.out_dir / 'risk_report.json'}"
        )
        _write_report(run.out_dir, {**report, "error": message})
        raise CalibrationError(message) from error
    fitted = FittedRisk(
        model=model,
        calibrator=calibrator,
        study_calibrator=study_calibrator,
        out_of_fold=out_of_fold,
        n_breasts=len(train.labels),
        n_positive=int(train.labels.sum()),
    )
    shown = study_probability(study_raw, calibrator, study_calibrator)
    points = choose_operating_points(np.round(shown, OUTPUT_DECIMALS), study_labels)
    rounding = rounding_effect(shown, study_labels)
    console.print(
        f"out-of-fold study AUC {rounding.auc_raw:.4f}, {rounding.auc_rounded:.4f} on the "
        f"2-decimal probabilities users see (lost to rounding: {rounding.loss:.4f})"
    )
    # why the study has its own map: the breast map of the highest breast runs low for "any
    # breast malignant" (the study map's figures are in-sample: it was fitted on these scores)
    breast_mapped = calibrator.apply(study_raw)
    study_check = {
        "share_malignant": float(study_labels.mean()),
        "mean_breast_map": float(breast_mapped.mean()),
        "ece_breast_map": expected_calibration_error(breast_mapped, study_labels),
        "mean_study_map": float(shown.mean()),
        "ece_study_map_in_sample": expected_calibration_error(shown, study_labels),
    }
    console.print(
        f"out-of-fold studies {study_check['share_malignant']:.3f} malignant: breast map of "
        f"the highest breast mean {study_check['mean_breast_map']:.3f}, ECE "
        f"{study_check['ece_breast_map']:.3f}; study map mean {study_check['mean_study_map']:.3f}"
        f", ECE {study_check['ece_study_map_in_sample']:.3f} (in-sample)"
    )
    bundle_dir = copy_bundle(run.model, run.out_dir / "bundle", keep_fusion=True)
    manifest = read_manifest(bundle_dir)
    thresholds = {"intermediate": points.intermediate.threshold, "high": points.high.threshold}
    write_manifest(bundle_dir, replace(manifest, thresholds={**manifest.thresholds, **thresholds}))
    save_risk(
        fitted,
        bundle_dir,
        training_data=training_data,
        metrics=metrics,
        candidate_score=pipeline.detector.candidate_threshold,
        finding_score=pipeline.detector.finding_threshold,
        findings_per_image=pipeline.detector.findings_per_image,
        quality_model=shipped_model().digest,
    )
    report.update(
        bundle=str(bundle_dir),
        calibration=calibrator.describe(),
        study_calibration=study_calibrator.describe(),
        operating_points=points.to_dict(),
        out_of_fold_study_calibration=study_check,
        out_of_fold_study_rounding={
            "auc_raw": rounding.auc_raw,
            "auc_rounded": rounding.auc_rounded,
            "loss": rounding.loss,
        },
    )
    _write_report(run.out_dir, report)
    return report


def _write_report(folder: Path, report: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "risk_report.json").write_text(json.dumps(report, indent=2) + "\n", "utf-8")
