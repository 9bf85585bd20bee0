"""``mammocad calibrate``: refit a bundle's risk calibration and suspicion thresholds on a
site's own labelled studies, without retraining the detector (docs/calibration.md).

Reads the ``result.json`` files of an ``analyze`` / ``batch`` run of the SAME bundle (their
uncalibrated study scores) and a label CSV in the format ``mammocad eval study`` accepts, and
writes a copy of the bundle — weights untouched, so their sha256 still holds — with the site's
map as ``study_calibration.json`` and as the breast map ``calibration.json`` (see
:func:`site_probability`), the new ``intermediate`` / ``high`` thresholds in the manifest and a
calibration section in the model card. The source bundle is never modified.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from mammocad.commands.eval_study import StudyLabel, read_results, unmatched_labels
from mammocad.detect.bundle import (
    MODEL_CARD_FILE,
    BundleManifest,
    read_manifest,
    set_card_section,
    write_bundle_copy,
    write_manifest,
    write_model_card,
)
from mammocad.errors import ModelBundleError
from mammocad.eval.study_metrics import StudyMetrics, evaluate_study
from mammocad.risk.aggregate import OUTPUT_DECIMALS, study_probability
from mammocad.risk.calibration import (
    STUDY_CALIBRATION_FILE,
    CalibrationError,
    CalibrationMethod,
    Calibrator,
    fit_calibrator,
    save_calibration,
)
from mammocad.risk.operating_points import OperatingPoints, choose_operating_points

FloatArray = npt.NDArray[np.float64]
#: the most AUC the 2-decimal rounding may cost (the [study] issue's limit)
MAX_ROUNDING_LOSS = 0.005


@dataclass(frozen=True, kw_only=True)
class SiteScores:
    """Labelled, processed studies of one results folder: ``raw`` the uncalibrated study score,
    ``shown_before`` the unrounded probability the source bundle gave (equal to ``raw`` when it
    had no calibration), ``labels`` 1 malignant / 0 benign."""

    raw: FloatArray
    shown_before: FloatArray
    labels: npt.NDArray[np.int64]
    n_rejected: int
    n_unlabelled: int


@dataclass(frozen=True, kw_only=True)
class CalibrationOutcome:
    """What ``mammocad calibrate`` fitted and wrote; metrics are on the fitting data."""

    bundle: Path
    calibrator: Calibrator
    operating_points: OperatingPoints
    scores: SiteScores
    before: StudyMetrics
    after: StudyMetrics

    @property
    def rounding_ok(self) -> bool:
        return self.after.rounding.loss < MAX_ROUNDING_LOSS


def _raw_score(result: dict[str, Any], path_hint: str) -> tuple[float, float]:
    """(uncalibrated score, unrounded probability shown) of one processed result."""
    shown = result.get("x_malignancy_probability_unrounded")
    if shown is None:
        raise CalibrationError(
            f"{path_hint} has no x_malignancy_probability_unrounded: it was written by an older "
            "mammocad; run `mammocad analyze` again with this bundle"
        )
    return float(result.get("x_malignancy_probability_uncalibrated", shown)), float(shown)


def collect_scores(
    results_dir: Path,
    labels: dict[str, StudyLabel],
    *,
    sha256: str,
    version: str | None = None,
    results: Sequence[dict[str, Any]] | None = None,
) -> SiteScores:
    """The labelled, processed studies of ``results_dir`` made by the weights ``sha256`` and,
    where given, the bundle ``version`` (a ``+cal.`` suffix aside); ``results``: those of
    ``results_dir`` where the caller has read them already.

    Raises:
        CalibrationError: a result comes from other weights or another version, or lacks its
            unrounded score.
    """
    raw, shown, truth, rejected, unlabelled, foreign = [], [], [], 0, 0, 0
    read = results if results is not None else read_results(results_dir)
    for result in read:
        uid = str(result["study_instance_uid"])
        made_by = result.get("model") or {}
        if uid not in labels:
            unlabelled += 1
        elif made_by.get("sha256") != sha256 or not _same_version(made_by.get("version"), version):
            foreign += 1
        elif result["malignancy_probability"] is None:
            rejected += 1
        else:
            score, before = _raw_score(result, f"{results_dir}/{uid}")
            raw.append(score)
            shown.append(before)
            truth.append(int(labels[uid].malignant))
    if read and unlabelled == len(read):
        raise CalibrationError(unmatched_labels(labels, read))
    if foreign:
        raise CalibrationError(
            f"{foreign} labelled results under {results_dir} were made by other weights or "
            "another version of the bundle than --model (bundles of one detector may differ in "
            "their risk model, which makes the scores): analyse the site's studies with this "
            "bundle first"
        )
    return SiteScores(
        raw=np.asarray(raw, dtype=np.float64),
        shown_before=np.asarray(shown, dtype=np.float64),
        labels=np.asarray(truth, dtype=np.int64),
        n_rejected=rejected,
        n_unlabelled=unlabelled,
    )


def _same_version(made_by: object, version: str | None) -> bool:
    """Whether a result's bundle version is ``version`` but for the ``+cal.`` suffix that
    calibrating adds (recalibration refits the uncalibrated score, which it does not change);
    true where either is not recorded."""
    if not made_by or not version:
        return True
    return str(made_by).split("+cal.")[0] == version.split("+cal.")[0]


def _check_destination(model: Path, out: Path) -> None:
    if out.resolve() == model.resolve() or model.resolve() in out.resolve().parents:
        raise ModelBundleError(
            f"--out {out} is the source bundle (or inside it): give a new folder, the source "
            "bundle is never overwritten"
        )
    if out.exists():
        raise ModelBundleError(f"--out {out} already exists: give a new folder or delete it")
    # the copy is written as OUT.partial, which is first cleared: it must not be the source
    target = out.resolve()
    partial = target.with_name(target.name + ".partial")
    if partial == model.resolve() or partial in model.resolve().parents:
        raise ModelBundleError(
            f"--out {out} would be written as {partial}, the source bundle (or a folder holding "
            "it): give another name"
        )


def run_calibrate(
    *,
    results_dir: Path,
    labels: dict[str, StudyLabel],
    model: Path,
    out: Path,
    method: CalibrationMethod | None = None,
    version: str | None = None,
    source: str = "",
    results: Sequence[dict[str, Any]] | None = None,
) -> CalibrationOutcome:
    """Fit calibration and thresholds on the site's studies and write the new bundle ``out``.

    ``method`` ``None`` chooses isotonic or Platt by the number of studies; ``version``
    defaults to the source version with ``+cal.<YYYYMMDD>``; ``results``: those of
    ``results_dir`` where the caller has read them already.

    Raises:
        ModelBundleError: ``out`` is the source bundle or exists; the copy's weights differ.
        CalibrationError: too few labelled studies, one class, or results of other weights.
    """
    _check_destination(model, out)
    manifest = read_manifest(model)
    scores = collect_scores(
        results_dir, labels, sha256=manifest.sha256, version=manifest.version, results=results
    )
    calibrator = fit_calibrator(scores.raw, scores.labels, method=method, source=source)
    calibrated = site_probability(scores.raw, calibrator)
    points = choose_operating_points(np.round(calibrated, OUTPUT_DECIMALS), scores.labels)
    before = evaluate_study(scores.shown_before, scores.labels, n_bootstrap=0)
    after = evaluate_study(calibrated, scores.labels, n_bootstrap=0)
    outcome = CalibrationOutcome(
        bundle=out,
        calibrator=calibrator,
        operating_points=points,
        scores=scores,
        before=before,
        after=after,
    )
    _write_bundle(model, manifest, outcome, version=version)
    return outcome


def site_probability(raw: npt.ArrayLike, calibrator: Calibrator) -> FloatArray:
    """The study probabilities a bundle written by ``calibrate`` shows for raw study scores:
    the site's map is its study map and its breast map. A study is never shown below its
    highest breast (:func:`~mammocad.risk.aggregate.study_probability`), so a breast map kept
    from the source bundle — fitted on other studies, often far more often malignant than a
    screening site's — would put a floor under the site's study probabilities that the
    site's map could not lower. With the site's labels per study, a breast is shown what the
    site's map gives its own score: the higher breast the study's probability."""
    return study_probability(raw, calibrator, calibrator)


def _write_bundle(
    model: Path, manifest: BundleManifest, outcome: CalibrationOutcome, *, version: str | None
) -> None:
    """Copy ``model`` to ``outcome.bundle`` with the site's map as study and breast map,
    the thresholds and the model card."""
    base = manifest.version.split("+cal.")[0]  # recalibrating a calibrated bundle: one suffix
    described = outcome.calibrator.describe()
    new_manifest = replace(
        manifest,
        version=version or f"{base}+cal.{datetime.now(UTC):%Y%m%d}",
        thresholds={**manifest.thresholds, **_thresholds(outcome.operating_points)},
        # the site's map is now both files: the source's descriptions would name maps the
        # bundle no longer has (an empty section means no risk model, and stays empty)
        risk=manifest.risk
        and {**manifest.risk, "calibration": described, "study_calibration": described},
    )
    record = _record(outcome, manifest.version, model)

    def fill(copy: Path) -> None:
        save_calibration(outcome.calibrator, copy, extra=record, name=STUDY_CALIBRATION_FILE)
        save_calibration(outcome.calibrator, copy, extra=record)
        write_manifest(copy, new_manifest)
        update_model_card(copy, manifest, new_manifest)
        set_card_section(copy, "Calibration", card_section(outcome))

    try:
        write_bundle_copy(model, outcome.bundle, fill)
    except OSError as error:  # a file in the way, no permission, a full disk
        raise ModelBundleError(
            f"--out {outcome.bundle}: the new bundle cannot be written there ({error}); give a "
            "new folder in a place you can write to"
        ) from error


#: a suspicion threshold as a model card's thresholds line quotes it ("high: 0.53")
_CARD_THRESHOLD = re.compile(r"\b(intermediate|high): \d+(?:\.\d+)?(?:e-?\d+)?")


def update_model_card(copy: Path, old: BundleManifest, new: BundleManifest) -> None:
    """Update the copied ``MODEL_CARD.md`` for ``new`` where it quotes the manifest: the
    version in its title, the suspicion thresholds and the risk model's calibrations. Only
    those lines change — rewriting the card from the manifest would drop the sections other
    commands added (classifier, risk model, held-out evaluations). A bundle without a card
    gets one from ``new``."""
    card = copy / MODEL_CARD_FILE
    if not card.is_file():
        write_model_card(copy, new)
        return
    lines = card.read_text(encoding="utf-8").split("\n")
    title = f"# {new.name} {new.version}"  # as write_model_card titles a card
    if not lines[0].startswith("# "):
        lines[:0] = [title, ""]
    elif f" {old.version}" in lines[0]:  # a title edited by hand keeps its words
        lines[0] = lines[0].replace(f" {old.version}", f" {new.version}", 1)
    else:
        lines[0] = title
    renamed = {
        f"`{file}`: {old.risk[key]}": f"`{file}`: {new.risk[key]}"
        for file, key in (
            ("calibration.json", "calibration"),
            ("study_calibration.json", "study_calibration"),
        )
        if old.risk.get(key) and new.risk.get(key)
    }
    for index, line in enumerate(lines):
        if line == _thresholds_line(old):
            lines[index] = _thresholds_line(new)
        elif line.startswith("- Thresholds:"):  # edited by hand: its notes are kept
            lines[index] = _CARD_THRESHOLD.sub(lambda m: f"{m[1]}: {new.thresholds[m[1]]}", line)
        for before, after in renamed.items():
            lines[index] = lines[index].replace(before, after)
    card.write_text("\n".join(lines), encoding="utf-8")


def _thresholds_line(manifest: BundleManifest) -> str:
    """The thresholds line of the card's Model section as write_model_card writes it."""
    values = "; ".join(f"{name}: {value}" for name, value in manifest.thresholds.items())
    return f"- Thresholds: {values or 'none recorded'}."


def _thresholds(points: OperatingPoints) -> dict[str, float]:
    return {"intermediate": points.intermediate.threshold, "high": points.high.threshold}


def _record(outcome: CalibrationOutcome, version: str, model: Path) -> dict[str, Any]:
    """What calibration.json keeps beside the parameters: provenance and fitting metrics."""
    before, after = outcome.before, outcome.after
    return {
        "source_bundle": {"path": str(model), "version": version},
        "operating_points": outcome.operating_points.to_dict(),
        "fitting_metrics": {
            "auc_before": before.auc.auc,
            "auc_after": after.auc.auc,
            "auc_after_rounded": after.rounding.auc_rounded,
            "rounding_loss": after.rounding.loss,
            "ece_before": before.calibration.ece,
            "ece_after": after.calibration.ece,
            "brier_before": before.calibration.brier,
            "brier_after": after.calibration.brier,
        },
    }


def card_section(outcome: CalibrationOutcome) -> list[str]:
    """The body of the model card's "Calibration" section (Markdown lines)."""
    calibrator, points, after = outcome.calibrator, outcome.operating_points, outcome.after
    lines = [
        f"The study probability is calibrated on this site: {calibrator.describe()}, on "
        f"{calibrator.fitted[:10]}; source: {calibrator.source or 'not recorded'}. Parameters "
        "in `study_calibration.json`, and the same map in `calibration.json` for the breast "
        "probabilities (the labels are per study: a breast is shown what this map gives its "
        "score).",
        "",
        f"On the fitting data: AUC {after.auc.auc:.3f} ({after.rounding.auc_rounded:.3f} on the "
        f"2-decimal probabilities shown), ECE {outcome.before.calibration.ece:.3f} → "
        f"{after.calibration.ece:.3f}, Brier {outcome.before.calibration.brier:.3f} → "
        f"{after.calibration.brier:.3f}.",
        "",
        "| suspicion from | threshold | sensitivity | specificity |",
        "|---|---|---|---|",
    ]
    for name, metrics in (("intermediate", points.intermediate), ("high", points.high)):
        lines.append(
            f"| {name} | {metrics.threshold:.2f} | {metrics.sensitivity:.3f} | "
            f"{metrics.specificity:.3f} |"
        )
    notes = [line for note in points.notes for line in (f"Note: {note}", "")]
    return [*lines, "", *notes]


def print_outcome(outcome: CalibrationOutcome, *, console: Console) -> None:
    """Before/after metrics and the operating points as Rich tables, then warnings."""
    scores, before, after = outcome.scores, outcome.before, outcome.after
    console.print(
        f"{len(scores.raw)} labelled studies ({int(scores.labels.sum())} malignant), "
        f"{scores.n_rejected} rejected, {scores.n_unlabelled} without a label; calibration "
        f"{outcome.calibrator.describe()}"
    )
    table = Table(title="On the fitting data", title_justify="left")
    for column in ("", "before", "after"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("AUC", f"{before.auc.auc:.4f}", f"{after.auc.auc:.4f}")
    table.add_row(
        "AUC shown (2 decimals)",
        f"{before.rounding.auc_rounded:.4f}",
        f"{after.rounding.auc_rounded:.4f}",
    )
    table.add_row("lost to rounding", f"{before.rounding.loss:.4f}", f"{after.rounding.loss:.4f}")
    table.add_row("ECE", f"{before.calibration.ece:.4f}", f"{after.calibration.ece:.4f}")
    table.add_row("Brier", f"{before.calibration.brier:.4f}", f"{after.calibration.brier:.4f}")
    console.print(table)
    console.print(_threshold_table(outcome.operating_points))
    for note in outcome.operating_points.notes:
        console.print(f"note: {note}", style="yellow", markup=False)
    if not outcome.rounding_ok:
        console.print(
            f"warning: rounding to 2 decimals costs {after.rounding.loss:.4f} AUC (limit "
            f"{MAX_ROUNDING_LOSS}): the calibrated probabilities are bunched; more labelled "
            "studies, or Platt instead of isotonic, may spread them",
            style="yellow",
            markup=False,
        )
    console.print(f"calibrated bundle written to {outcome.bundle}", markup=False)


def _threshold_table(points: OperatingPoints) -> Table:
    table = Table(title="Suspicion thresholds (on the probabilities shown)", title_justify="left")
    for column in (
        "suspicion",
        "target",
        "threshold",
        "sensitivity [95% CI]",
        "specificity [95% CI]",
    ):
        table.add_column(column)
    rows = (
        ("intermediate", f"sensitivity ≥ {points.sensitivity_target:.0%}", points.intermediate),
        ("high", f"specificity ≥ {points.specificity_target:.0%}", points.high),
    )
    for name, target, metrics in rows:
        sens_low, sens_high = metrics.sensitivity_ci
        spec_low, spec_high = metrics.specificity_ci
        table.add_row(
            name,
            target,
            f"{metrics.threshold:.2f}",
            f"{metrics.sensitivity:.3f} [{sens_low:.3f}, {sens_high:.3f}]",
            f"{metrics.specificity:.3f} [{spec_low:.3f}, {spec_high:.3f}]",
        )
    return table
