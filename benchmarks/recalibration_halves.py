"""Per-site recalibration measured on studies the fit never saw: cross-fitted halves.

    .venv/bin/python benchmarks/recalibration_halves.py --results runs/mias-bare \
        --dataset-labels ../shared/data/mini-mias/Info.txt --model models/mammocad-detector

Splits the labelled studies of an ``analyze`` / ``batch`` run by patient into two random
halves (``--splits`` times, seeded), fits what ``mammocad calibrate`` fits on one half —
the study map (:func:`mammocad.risk.calibration.fit_calibrator`, ``--method auto``) and the
``intermediate`` / ``high`` thresholds — and applies it to the other half's uncalibrated
scores exactly as ``analyze`` with the calibrated bundle would
(:func:`mammocad.commands.calibrate.site_probability`, 2 decimals). Prints, over the
held-out halves (two per split), the mean and range of ECE (and of the ECE exactly
calibrated probabilities would show by chance), Brier, and sensitivity / specificity at the
``high`` threshold, before (the bundle as it is) and after. AUC does not change: the map is
monotone. ~120 studies per half make one split's ECE noisy, hence the repeats.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mammocad.commands import eval_study as ev
from mammocad.commands.calibrate import SiteScores, collect_scores, site_probability
from mammocad.detect.bundle import read_manifest
from mammocad.eval.study_metrics import evaluate_study
from mammocad.risk import SuspicionThresholds
from mammocad.risk.aggregate import OUTPUT_DECIMALS
from mammocad.risk.calibration import fit_calibrator
from mammocad.risk.operating_points import choose_operating_points


def _measures(shown: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    calibration = evaluate_study(shown, labels, n_bootstrap=0).calibration
    called = np.round(shown, OUTPUT_DECIMALS) >= threshold
    return {
        "ECE": calibration.ece,
        "ECE by chance": calibration.ece_if_calibrated,
        "Brier": calibration.brier,
        "high threshold": threshold,
        "sensitivity at high": float(called[labels == 1].mean()),
        "specificity at high": float((~called[labels == 0]).mean()),
    }


def _held_out(fit: SiteScores, test: SiteScores) -> dict[str, float]:
    """What ``calibrate`` fits on ``fit``, applied to ``test`` as ``analyze`` would."""
    calibrator = fit_calibrator(fit.raw, fit.labels)
    fitted = site_probability(fit.raw, calibrator)
    high = choose_operating_points(np.round(fitted, OUTPUT_DECIMALS), fit.labels).high
    applied = site_probability(test.raw, calibrator)
    return _measures(np.asarray(applied, dtype=np.float64), test.labels, high.threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--dataset-labels", type=Path, action="append", required=True)
    parser.add_argument("--model", type=Path, default=Path("models/mammocad-detector"))
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    results = ev.read_results(args.results)
    breasts = ev.breast_labels_from_dataset(args.dataset_labels, results)
    labels = ev.study_labels_from_breasts(breasts, results)
    patients = sorted({label.patient_id for label in labels.values()})
    manifest = read_manifest(args.model)
    bundle_high = SuspicionThresholds.from_manifest(manifest.thresholds).high
    rng = np.random.default_rng(args.seed)
    before: list[dict[str, float]] = []
    after: list[dict[str, float]] = []
    for _ in range(args.splits):
        order = rng.permutation(len(patients))
        halves = [{patients[i] for i in order[0::2]}, {patients[i] for i in order[1::2]}]
        scores = [
            collect_scores(
                args.results,
                {uid: label for uid, label in labels.items() if label.patient_id in half},
                sha256=manifest.sha256,
                results=results,
            )
            for half in halves
        ]
        for fit, test in ((scores[0], scores[1]), (scores[1], scores[0])):
            before.append(_measures(test.shown_before, test.labels, bundle_high))
            after.append(_held_out(fit, test))
    print(
        f"{len(labels)} labelled studies of {len(patients)} patients; {args.splits} random "
        f"halvings, {len(after)} held-out halves; mean [min, max]"
    )
    for name in before[0]:
        for arm, rows in (("bundle as it is", before), ("recalibrated", after)):
            values = np.array([row[name] for row in rows])
            print(
                f"  {name:<20} {arm:<16} {values.mean():.3f} "
                f"[{values.min():.3f}, {values.max():.3f}]"
            )


if __name__ == "__main__":
    main()
