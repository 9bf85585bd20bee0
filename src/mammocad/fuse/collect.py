"""Fusion cases from phantom studies: render, run the pipeline, keep each breast's findings,
candidates and RoI features with its label — cached, so a re-run reuses the detector's work.

A cache file holds one study and is named after everything that decides its content: the
detector bundle's sha256 (and its malignancy classifier's), its detector configuration and
preprocessing, the quality gate's settings and learned model, the candidate and finding
scores, the phantom parameters, the study index and :data:`CASES_VERSION` (how mammocad turns
the outputs into cases).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from mammocad.datasets.phantoms import PhantomSpec, study_seed, view_image
from mammocad.fuse.data import BreastCase, breast_cases, load_cases, save_cases
from mammocad.pipeline import Pipeline
from mammocad.quality import shipped_model
from mammocad.structures import Laterality, Study
from mammocad.synthetic import StudyTruth, generate_study


def phantom_study(spec: PhantomSpec, index: int) -> tuple[Study, StudyTruth]:
    """Study ``index`` of ``spec`` as the pipeline reads it (pixels in memory), with truth."""
    phantom = generate_study(
        seed=study_seed(spec.seed, index),
        size=spec.size,
        malignant_rate=spec.malignant_rate,
        benign_rate=spec.benign_rate,
        one_view_rate=spec.one_view_rate,
    )
    truth = phantom.truth
    source = f"phantom:{spec.seed}:{index}"
    study = Study(
        study_instance_uid=truth.study_instance_uid,
        patient_id=truth.patient.patient_id,
        accession_number=truth.accession_number,
        images=[view_image(view, source=source) for view in phantom.views],
    )
    for image in study.images:
        image.study_instance_uid = truth.study_instance_uid
        image.patient_id = truth.patient.patient_id
    return study, truth


#: raised when the same bundle and phantoms would give other cases (a change in how boxes or
#: features are made), so that caches of the old cases are not reused
CASES_VERSION = 2


def cache_key(pipeline: Pipeline, spec: PhantomSpec) -> str:
    """What decides the cached content, hashed (study count and index excluded)."""
    detector = pipeline.detector
    parts = {
        # what mammocad made of the outputs (boxes cut to the crop since 2026-12-07)
        "code": CASES_VERSION,
        "bundle": detector.manifest.sha256,
        # the weights' sha256 does not cover the manifest: a changed per-image cap or NMS
        # overlap changes the candidates as much as new weights would
        "detector": detector.manifest.detector.to_dict(),
        "malignancy": detector.manifest.malignancy.get("sha256"),
        # the detector's inputs: a copy with other preprocessing finds other candidates
        "preprocessing": pipeline.preprocessing.to_dict(),
        # the gate's scores are features of the cases (min_quality, mean_quality) and decide
        # which views are refused: a new quality model changes the cases
        "quality": pipeline.quality.to_dict(),
        "quality_model": shipped_model().digest,
        "candidate_score": detector.candidate_threshold,
        "finding_score": detector.finding_threshold,
        # which candidates are reported findings also depends on the per-image cap
        **({"findings_per_image": n} if (n := detector.findings_per_image) is not None else {}),
        "phantoms": {k: v for k, v in asdict(spec).items() if k != "n_studies"},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def collect_cases(
    pipeline: Pipeline,
    spec: PhantomSpec,
    *,
    cache_dir: Path | None = None,
    on_study: Callable[[int, bool], None] | None = None,
) -> list[BreastCase]:
    """The labelled breast cases of every study of ``spec``, in study order.

    ``pipeline`` must have no fusion weights (fusion learns from the detector's own outputs):
    build it with ``Pipeline.from_bundle`` and set ``pipeline.fuser = Fuser()``, and the
    detector's candidate threshold with ``pipeline.detector.set_candidate_threshold``.
    ``on_study(index, cached)`` is called after each study (for progress).
    """
    if pipeline.fuser.fusion is not None:
        raise ValueError("collect fusion cases with a pipeline without fusion weights")
    folder = None if cache_dir is None else cache_dir / cache_key(pipeline, spec)
    cases: list[BreastCase] = []
    for index in range(spec.n_studies):
        path = None if folder is None else folder / f"study-{index:05d}.npz"
        cached = path is not None and path.is_file()
        if path is not None and cached:
            found = load_cases(path)
        else:
            found = _analyze(pipeline, spec, index)
            if path is not None:
                save_cases(path, found)
        cases += found
        if on_study is not None:
            on_study(index, cached)
    return cases


def _analyze(pipeline: Pipeline, spec: PhantomSpec, index: int) -> list[BreastCase]:
    study, truth = phantom_study(spec, index)
    analysis = pipeline.analyze(study)
    labels = {side: truth.breast(side).malignant for side in (Laterality.R, Laterality.L)}
    return breast_cases(analysis.study, analysis.preprocessed, analysis.predictions, labels=labels)
