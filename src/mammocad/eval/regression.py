"""Metric regression check: a bundle on a fixed phantom benchmark against a recorded baseline.

:func:`run_benchmark` renders the benchmark's phantom studies, writes them as DICOM and runs
them through :meth:`Pipeline.analyze` one by one, as ``mammocad analyze`` does (reading,
preprocessing, quality gate, detection, fusion, aggregation), so a regression anywhere in that
line shows in the numbers. It measures:

* ``study_auc``: ROC-AUC of the study probability (unrounded, as ``mammocad eval study``)
  against the study label (malignant when any lesion is). A rejected study has no probability;
  it counts as 0 here, so rejecting a malignant study cannot hide a miss.
* ``froc/malignant/sens@0.25fp`` and ``sens@1fp``: malignant-lesion FROC sensitivity of the
  reported findings (:mod:`mammocad.eval.froc`, boxes in original pixels), over every image of
  the benchmark — an image the pipeline rejected counts with no findings.

Everything is deterministic on one machine: the phantoms follow from the seed, and the detector
runs on one torch thread (the order of floating-point sums depends on the thread count).
:func:`compare` tells which metrics fell below ``baseline − tolerance``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mammocad.datasets.phantoms import PhantomSpec, study_seed
from mammocad.datasets.spec import parse_spec, phantom_spec
from mammocad.detect.bundle import read_manifest
from mammocad.eval.calibration import ece_if_calibrated, expected_calibration_error
from mammocad.eval.froc import MALIGNANT, ImagePredictions, ImageTruth, evaluate_froc
from mammocad.eval.study_metrics import roc_auc
from mammocad.io import iter_studies
from mammocad.pipeline import Pipeline, StudyAnalysis
from mammocad.structures import Finding
from mammocad.synthetic import PhantomStudy, generate_study, write_study

#: Seed 950000 is disjoint from the shipped bundle's training (1000–1199, 3000–3199), its validation
#: (777000) and the held-out evaluations (900000). Sized to run in about 2½–3 minutes on two
#: busy CPU cores; same seeding as ``mammocad eval detector --data <spec>``.
BENCHMARK_SPEC = "phantom:n=16,seed=950000,size=full"
FP_RATES = (0.25, 1.0)
STUDY_AUC = "study_auc"
METRICS = (STUDY_AUC, *(f"froc/{MALIGNANT}/sens@{rate:g}fp" for rate in FP_RATES))
#: the AUC moves by 1/(positives × negatives) per swapped pair (≈0.016 here): 0.02 absorbs
#: one swap from floating-point differences between machines, not a real loss
AUC_TOLERANCE = 0.02


@dataclass(frozen=True, kw_only=True)
class BenchmarkResult:
    """``metrics`` keyed by :data:`METRICS`; ``counts``: studies, positives (malignant
    studies), malignant_lesions (per image, as FROC counts them), images, rejected_studies."""

    spec: str
    metrics: dict[str, float]
    counts: dict[str, int]
    #: ``study_ece``, ``mean_probability``, ``share_malignant`` of the studies with a
    #: probability: reported, not held to a baseline (the phantoms' prevalence is not a site's)
    calibration: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """What ``tests/metrics/baseline.json`` holds: the bundle it was measured on, the result,
    and per metric how far below it a new measurement may fall."""

    bundle: dict[str, str]
    result: BenchmarkResult
    tolerances: dict[str, float]
    recorded: str = ""
    machine: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "benchmark": self.result.spec,
            "metrics": self.result.metrics,
            "tolerances": self.tolerances,
            "counts": self.result.counts,
            "recorded": self.recorded,
            "machine": self.machine,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        result = BenchmarkResult(
            spec=data["benchmark"], metrics=dict(data["metrics"]), counts=dict(data["counts"])
        )
        return cls(
            bundle=dict(data["bundle"]),
            result=result,
            tolerances=dict(data["tolerances"]),
            recorded=data.get("recorded", ""),
            machine=data.get("machine", ""),
        )


@dataclass(frozen=True, kw_only=True)
class Regression:
    metric: str
    measured: float
    baseline: float
    tolerance: float

    def __str__(self) -> str:
        return (
            f"{self.metric}: {self.measured:.4f} < baseline {self.baseline:.4f} − tolerance "
            f"{self.tolerance:.4f}"
        )


@dataclass(slots=True)
class _Collected:
    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    predictions: list[ImagePredictions] = field(default_factory=list)
    truths: list[ImageTruth] = field(default_factory=list)
    rejected: int = 0
    shown: list[tuple[float, int]] = field(default_factory=list)  # (probability, label)


def _phantoms(spec: PhantomSpec) -> Iterator[PhantomStudy]:
    """One at a time: a full-size study holds about 140 MB of pixels."""
    for index in range(spec.n_studies):
        yield generate_study(
            seed=study_seed(spec.seed, index),
            size=spec.size,
            malignant_rate=spec.malignant_rate,
            benign_rate=spec.benign_rate,
            one_view_rate=spec.one_view_rate,
        )


def _collect(phantom: PhantomStudy, analysis: StudyAnalysis, into: _Collected) -> None:
    probability = analysis.result["x_malignancy_probability_unrounded"]
    into.rejected += probability is None
    into.scores.append(0.0 if probability is None else float(probability))
    into.labels.append(int(phantom.truth.malignant))
    if probability is not None:
        into.shown.append((float(probability), int(phantom.truth.malignant)))
    for view in phantom.truth.views:
        found = analysis.findings(view.sop_instance_uid)
        into.predictions.append(
            ImagePredictions(
                boxes=[f.box for f in found],
                scores=[f.score for f in found],
                labels=[f.label.value for f in found],
                malignancy=[f.malignancy_probability for f in found],
                malignant_lesion=_ranked(found),
            )
        )
        into.truths.append(
            ImageTruth(
                boxes=[lesion.box for lesion in view.lesions],
                labels=[lesion.label.value for lesion in view.lesions],
                malignant=[int(lesion.malignant) for lesion in view.lesions],
            )
        )


def _ranked(found: Sequence[Finding]) -> list[float] | None:
    """The lesion ranker's probabilities of ``found`` (``None`` without a ranker: the FROC
    then ranks by score × malignancy)."""
    ranked = [f.malignant_lesion_probability for f in found]
    return [p for p in ranked if p is not None] if None not in ranked else None


def run_benchmark(pipeline: Pipeline, spec: str = BENCHMARK_SPEC) -> BenchmarkResult:
    """Analyse the phantom studies of ``spec`` (a ``phantom:`` data spec) with ``pipeline``.

    Build ``pipeline`` with ``num_threads=1`` for numbers that repeat exactly.

    Raises:
        ValueError: ``spec`` is not a phantom spec, or its studies lack a malignant or a
            benign study (no AUC) or malignant lesions (no FROC).
    """
    phantom_set = phantom_spec(parse_spec(spec))
    collected = _Collected()
    with tempfile.TemporaryDirectory(prefix="mammocad-benchmark-") as tmp:
        for index, phantom in enumerate(_phantoms(phantom_set)):
            # through DICOM, as users' studies come: reading and VOI are part of what is tested
            folder = write_study(phantom, Path(tmp, f"{index:04d}"))
            (study,) = iter_studies(folder)
            _collect(phantom, pipeline.analyze(study), collected)
            shutil.rmtree(folder)  # up to 70 MB a full-size study
    froc = evaluate_froc(
        collected.predictions, collected.truths, classes=(), fp_rates=FP_RATES
    ).curves.get(MALIGNANT)
    positives = sum(collected.labels)
    if froc is None or positives in (0, phantom_set.n_studies):
        raise ValueError(f"{spec} needs malignant and benign studies: use more studies")
    metrics = {STUDY_AUC: roc_auc(collected.scores, collected.labels)}
    probabilities, labels = np.array(collected.shown, dtype=np.float64).reshape(-1, 2).T
    chance, chance_p95 = ece_if_calibrated(probabilities)
    calibration = {
        "study_ece": expected_calibration_error(probabilities, labels),
        "study_ece_if_calibrated": chance,
        "study_ece_if_calibrated_p95": chance_p95,
        "mean_probability": float(probabilities.mean()),
        "share_malignant": float(labels.mean()),
    }
    metrics.update(zip(METRICS[1:], map(float, froc.sensitivity_at), strict=True))
    counts = {
        "studies": phantom_set.n_studies,
        "positives": positives,
        "malignant_lesions": froc.n_truths,
        "images": len(collected.truths),
        "rejected_studies": collected.rejected,
    }
    return BenchmarkResult(spec=spec, metrics=metrics, counts=counts, calibration=calibration)


def default_tolerances(result: BenchmarkResult) -> dict[str, float]:
    """:data:`AUC_TOLERANCE` for the AUC, one lesion's worth for each sensitivity: on one
    machine the numbers repeat exactly; the tolerance is for other machines' floating point."""
    one_lesion = 1.0 / max(1, result.counts["malignant_lesions"])
    return {name: AUC_TOLERANCE if name == STUDY_AUC else one_lesion for name in METRICS}


def compare(
    measured: Mapping[str, float],
    baseline: Mapping[str, float],
    tolerances: Mapping[str, float],
) -> list[Regression]:
    """The metrics of ``baseline`` that ``measured`` misses or falls below minus tolerance
    (a small epsilon keeps a tolerance of exactly one lesion from failing on rounding)."""
    regressions = []
    for name, expected in baseline.items():
        value = measured.get(name, float("nan"))
        tolerance = tolerances.get(name, 0.0)
        if not value >= expected - tolerance - 1e-9:  # NaN is a regression too
            regressions.append(
                Regression(metric=name, measured=value, baseline=expected, tolerance=tolerance)
            )
    return regressions


def bundle_identity(bundle: Path) -> dict[str, str]:
    """Name, version and weights sha256 of the bundle at ``bundle`` (its manifest), plus the
    sha256 of each optional model that changes its outputs (lesion classifier, fusion, risk)
    and of the thresholds: the bundle's (the finding threshold and cap decide which findings
    the FROC sees) and the detections the risk model reads (its finding and candidate scores
    and cap, kept in the manifest beside ``risk.json``)."""
    manifest = read_manifest(bundle)
    identity = {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}
    reads = ("finding_score", "findings_per_image", "candidate_score")
    thresholds = {"bundle": manifest.thresholds, "risk": {k: manifest.risk.get(k) for k in reads}}
    text = json.dumps(thresholds, sort_keys=True).encode("utf-8")
    identity["thresholds_sha256"] = hashlib.sha256(text).hexdigest()
    for part in ("malignancy", "fusion", "risk"):
        section = getattr(manifest, part)
        if section.get("sha256"):
            identity[f"{part}_sha256"] = str(section["sha256"])
    return identity


def same_bundle(identity: dict[str, str], recorded: dict[str, str]) -> bool:
    """Whether two identities name the same weights (name and version may differ)."""
    keys = {k for k in (*identity, *recorded) if k.endswith("sha256")}
    return all(identity.get(k) == recorded.get(k) for k in keys)


def make_baseline(bundle: Path, result: BenchmarkResult) -> Baseline:
    return Baseline(
        bundle=bundle_identity(bundle),
        result=result,
        tolerances=default_tolerances(result),
        recorded=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    )


def read_baseline(path: Path) -> Baseline:
    return Baseline.from_dict(json.loads(path.read_text(encoding="utf-8")))


def write_baseline(baseline: Baseline, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def format_rows(measured: BenchmarkResult, baseline: Baseline | None) -> Sequence[str]:
    """One line per metric: measured, recorded and tolerance (for the recorder's report)."""
    rows = []
    for name in METRICS:
        line = f"{name:<28} {measured.metrics[name]:.4f}"
        if baseline is not None and name in baseline.result.metrics:
            line += (
                f"   baseline {baseline.result.metrics[name]:.4f}"
                f" (tolerance {baseline.tolerances.get(name, 0.0):.4f})"
            )
        rows.append(line)
    if measured.calibration:
        numbers = measured.calibration
        rows.append(
            f"{'study_ece':<28} {numbers['study_ece']:.4f}   (mean probability "
            f"{numbers['mean_probability']:.3f}, share malignant {numbers['share_malignant']:.3f};"
            " not held to the baseline)"
        )
        if "study_ece_if_calibrated" in numbers:
            rows.append(
                f"{'study_ece by chance':<28} {numbers['study_ece_if_calibrated']:.4f}   (95th "
                f"percentile {numbers['study_ece_if_calibrated_p95']:.4f}: exactly calibrated "
                "probabilities on this many studies)"
            )
    return rows
