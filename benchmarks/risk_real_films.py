"""Risk-model settings judged on real films: mini-MIAS breast AUC of models fitted on phantoms.

Every risk model is fitted on phantom breasts only (``mammocad train risk``), so phantom
out-of-fold AUCs (``benchmarks/risk_models.py``) cannot say which setting carries over to film.
This script runs the bundle's detector and lesion classifier over every mini-MIAS patient once
(each patient one study, as ``mammocad eval breasts`` reads them), caches each breast as the
risk cache does (``CASES/<key>/<patient>.npz``, the key naming the bundle, its candidate
score and :data:`mammocad.fuse.collect.CASES_VERSION`; a re-run reuses it), then fits each
setting on the
given phantom cache folders and scores the 242 real breasts. Printed per setting: phantom
out-of-fold breast AUC, and mini-MIAS breast AUC for abnormal vs normal and malignant vs the
rest with patient-bootstrap 95 % intervals (``mammocad.eval.mias_breasts``), over all films and
over fold 0 alone; first, each feature's own AUC on the films.

    .venv/bin/python benchmarks/risk_real_films.py runs/cache/<key> [<key2> ...] \\
        --model models/mammocad-detector --cases runs/mias-cases \\
        [--mias ../shared/data/mini-mias] [--bootstrap 1000]

Read the "all films" column with care: the shipped detector was trained on mini-MIAS folds 1–4,
so four fifths of its real detections are in-sample for the detector (never for the risk
model, which saw no film). Fold 0 is the only fully held-out set, 48 films.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from risk_features import labelled_cases
from risk_models import SETTINGS
from sklearn.metrics import roc_auc_score as roc_auc

from mammocad.commands.train_fusion import collection_pipeline
from mammocad.datasets.mias import ImageLabel, image_labels, load_mias
from mammocad.datasets.records import AnnotatedImage
from mammocad.detect.bundle import read_manifest
from mammocad.eval.mias_breasts import BreastRow, evaluate_breasts, patient_studies, select_fold
from mammocad.fuse.collect import CASES_VERSION
from mammocad.fuse.data import BreastCase, breast_cases, load_cases, save_cases
from mammocad.risk.apply import case_inputs
from mammocad.risk.bundle import load_risk
from mammocad.risk.features import FEATURES, feature_matrix
from mammocad.risk.model import BoostParams, ModelParams, cross_fit, fit_model

Columns = Callable[[np.ndarray], np.ndarray]
#: features a phantom-trained model may read differently on film: the quality gate's scores
#: (a phantom's exposure is not a film's) and the two-view ones (mini-MIAS has MLO films only)
QUALITY = ("min_quality", "mean_quality")
VIEWS = ("both_views", "n_linked_pairs", "two_view_contribution")


def without(*names: str) -> Columns:
    """Set ``names`` to a constant column, which no tree splits on."""
    index = [FEATURES.index(name) for name in names]

    def columns(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[:, index] = 0.0
        return x

    return columns


def settings() -> dict[str, tuple[ModelParams, Columns]]:
    # two_view_contribution postdates bundle 0.5.1, whose trees do not read it
    shipped = without("two_view_contribution")
    chosen = {name: (params, shipped) for name, params in SETTINGS.items()}
    chosen["defaults, no quality"] = (BoostParams(), without(*QUALITY, "two_view_contribution"))
    chosen["defaults, no quality or views"] = (BoostParams(), without(*QUALITY, *VIEWS))
    return chosen


def collect(
    model: Path, records: list[AnnotatedImage], labels: dict[str, ImageLabel], cases_dir: Path
) -> dict[tuple[str, str], BreastCase]:
    """Every mini-MIAS breast as a case (label: malignant) by (patient, laterality), cached
    per patient; candidates down to the bundle's risk candidate score."""
    risk = load_risk(model)
    candidate = None if risk is None else risk.candidate_score
    manifest = read_manifest(model)
    key = {
        "bundle": manifest.sha256,
        "malignancy": manifest.malignancy.get("sha256"),
        "candidate_score": candidate,
        "cases": CASES_VERSION,
    }
    # cases of another bundle or an older mammocad are never read as this one's
    cases_dir = (
        cases_dir / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    )
    cases_dir.mkdir(parents=True, exist_ok=True)
    pipeline = None
    cases: dict[tuple[str, str], BreastCase] = {}
    for patient_id, films, study in patient_studies(records):
        path = cases_dir / f"{patient_id}.npz"
        if not path.is_file():
            if pipeline is None:  # loaded only when a patient is not cached yet
                pipeline = collection_pipeline(
                    model, candidate_score=candidate, device="cpu", threads=None
                )
            analysis = pipeline.analyze(study)
            sides = {r.laterality: labels[r.image_id].malignant for r in films if r.laterality}
            found = breast_cases(
                analysis.study, analysis.preprocessed, analysis.predictions, labels=sides
            )
            save_cases(path, found)
            print(f"{patient_id}: {len(found)} breasts", flush=True)
        for case in load_cases(path):
            cases[(patient_id, case.laterality.value)] = case
    return cases


def film_rows(
    records: list[AnnotatedImage],
    labels: dict[str, ImageLabel],
    cases: dict[tuple[str, str], BreastCase],
) -> list[BreastRow]:
    """One row per film that has a case (a rejected film has none), probability unset."""
    rows = []
    for record in records:
        side = record.laterality.value if record.laterality else ""
        if (record.patient_id, side) in cases:
            rows.append(
                BreastRow(
                    image_id=record.image_id,
                    patient_id=record.patient_id,
                    laterality=side,
                    density=record.density or "unknown",
                    abnormal=labels[record.image_id].abnormal,
                    malignant=labels[record.image_id].malignant,
                    probability=None,
                )
            )
    return rows


def real_auc(rows: list[BreastRow], scores: np.ndarray, n_boot: int) -> str:
    scored = [replace(row, probability=float(s)) for row, s in zip(rows, scores, strict=True)]
    tasks = evaluate_breasts(scored, n_bootstrap=n_boot)
    return "  ".join(
        f"{name.split('_')[0]} {t.metrics.auc.auc:.3f} [{t.metrics.auc.ci_low:.3f}, "
        f"{t.metrics.auc.ci_high:.3f}]"
        for name, t in tasks.items()
    )


@dataclass(frozen=True, slots=True)
class Breasts:
    """The phantom training breasts and the mini-MIAS films, as rows of :data:`FEATURES`."""

    phantom: list[BreastCase]
    y: np.ndarray  # phantom labels (1 malignant)
    patients: list[str]
    x: np.ndarray
    records: list[AnnotatedImage]
    rows: list[BreastRow]  # one per film with a case
    films: list[BreastCase]  # the case of each row
    real: np.ndarray


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("cache", type=Path, nargs="+", help="phantom risk-cache folders")
    parser.add_argument("--model", type=Path, required=True, help="the bundle whose detector")
    parser.add_argument("--cases", type=Path, required=True, help="mini-MIAS case cache folder")
    parser.add_argument("--mias", type=Path, default=Path("../shared/data/mini-mias"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    return parser.parse_args()


def load_breasts(args: argparse.Namespace) -> Breasts:
    """The phantom cache and every mini-MIAS film (run through the bundle when not cached)."""
    phantom, _ = labelled_cases(args.cache)
    records, labels = load_mias(args.mias), image_labels(args.mias)
    cases = collect(args.model, records, labels, args.cases)
    rows = film_rows(records, labels, cases)
    films = [cases[(row.patient_id, row.laterality)] for row in rows]
    return Breasts(
        phantom=phantom,
        y=np.array([case.label for case in phantom], dtype=np.int64),
        patients=[case.patient_id for case in phantom],
        x=feature_matrix([case_inputs(case, fused_probability=None) for case in phantom]),
        records=records,
        rows=rows,
        films=films,
        real=feature_matrix([case_inputs(case, fused_probability=None) for case in films]),
    )


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    breasts = load_breasts(args)
    y, patients, x = breasts.y, breasts.patients, breasts.x
    records, rows, real, phantom = breasts.records, breasts.rows, breasts.real, breasts.phantom
    # the training's patient-level folds, as `mammocad eval breasts --fold 0` selects them
    fold_films = {record.image_id for record in select_fold(records, fold=0)}
    held = np.array([row.image_id in fold_films for row in rows])
    fold0 = [row for row, keep in zip(rows, held, strict=True) if keep]
    print(
        f"phantom: {len(phantom)} breasts ({int(y.sum())} malignant); mini-MIAS: {len(rows)} "
        f"films ({sum(r.abnormal for r in rows)} abnormal, {sum(r.malignant for r in rows)} "
        f"malignant), fold 0: {len(fold0)}"
    )

    def line(name: str, phantom_auc: str, scores: np.ndarray) -> None:
        print(f"{name:32s} phantom {phantom_auc}")
        print(f"{'':32s} all films  {real_auc(rows, scores, args.bootstrap)}")
        print(f"{'':32s} fold 0     {real_auc(fold0, scores[held], args.bootstrap)}")

    print("each feature alone, all films (AUC abnormal / malignant):")
    abnormal = np.array([row.abnormal for row in rows])
    malignant = np.array([row.malignant for row in rows])
    for index, name in enumerate(FEATURES):
        column = np.nan_to_num(real[:, index])
        if column.min() < column.max():
            print(
                f"  {name:34s} {roc_auc(abnormal, column):.3f} / {roc_auc(malignant, column):.3f}"
            )
    shipped = load_risk(args.model)
    if shipped is not None:
        fitted = shipped.model.predict_rows(x)
        line("the bundle's own risk model", f"{roc_auc(y, fitted):.3f} (in-sample)",
             shipped.model.predict_rows(real))  # fmt: skip
        splits = Counter(
            shipped.model.features[feature]
            for tree in shipped.model.trees
            for feature, leaf in zip(tree.feature, tree.is_leaf, strict=True)
            if not leaf
        )
        print(f"{'':32s} its {splits.total()} splits by feature: {dict(splits.most_common())}")
    strongest = FEATURES.index("max_candidate_contribution")
    line("max_candidate_contribution", f"{roc_auc(y, x[:, strongest]):.3f}", real[:, strongest])
    for name, (params, columns) in settings().items():
        out_of_fold = cross_fit(columns(x), y, patients, params=params)
        model = fit_model(columns(x), y, params=params)
        line(name, f"{roc_auc(y, out_of_fold):.3f} out-of-fold", model.predict_rows(columns(real)))


if __name__ == "__main__":
    main()
