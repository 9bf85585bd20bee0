"""Fusion weights in a bundle: save → load round trip, checks, and bundles without fusion."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mammocad.detect import load_bundle, read_manifest
from mammocad.detect.bundle import MANIFEST_FILE, write_manifest
from mammocad.errors import ModelBundleError
from mammocad.fuse import collate, copy_bundle, load_fusion
from mammocad.fuse.bundle import FUSION_FILE
from mammocad.fuse.model import CrossViewFusion
from mammocad.risk import CALIBRATION_FILE, STUDY_CALIBRATION_FILE, CalibrationMethod, Calibrator
from mammocad.risk.calibration import save_calibration

from .conftest import CANDIDATE_SCORE, MakeCases


def test_round_trip_gives_the_same_module(
    fusion_bundle: Path, make_fusion_module: Callable[[int], CrossViewFusion]
) -> None:
    manifest = read_manifest(fusion_bundle)
    section = manifest.fusion
    assert section["weights_file"] == FUSION_FILE and section["candidate_score"] == CANDIDATE_SCORE
    loaded = load_fusion(fusion_bundle)
    assert loaded is not None and loaded.candidate_score == CANDIDATE_SCORE
    original = make_fusion_module(manifest.detector.box_head_dim)
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert "## Cross-view fusion" in (fusion_bundle / "MODEL_CARD.md").read_text("utf-8")
    load_bundle(fusion_bundle)  # the detector part is untouched and still verifies


def test_bundle_without_fusion_loads_as_before(tiny_bundle: Path) -> None:
    raw = json.loads((tiny_bundle / MANIFEST_FILE).read_text("utf-8"))
    assert "fusion" not in raw  # older readers see the same file
    assert read_manifest(tiny_bundle).fusion == {}
    assert load_fusion(tiny_bundle) is None


def test_copy_never_touches_the_source(tiny_bundle: Path, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in tiny_bundle.iterdir()}
    copy = copy_bundle(tiny_bundle, tmp_path / "copy")
    assert {p.name for p in copy.iterdir()} == set(before)
    assert {p.name: p.read_bytes() for p in tiny_bundle.iterdir()} == before
    with pytest.raises(ValueError, match="source bundle"):
        copy_bundle(tiny_bundle, tiny_bundle)


def test_tampered_weights_are_refused(fusion_bundle: Path, tmp_path: Path) -> None:
    copy = copy_bundle(fusion_bundle, tmp_path / "copy")  # the copy drops the fusion section
    assert load_fusion(copy) is None
    manifest = json.loads((fusion_bundle / MANIFEST_FILE).read_text("utf-8"))
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest), "utf-8")
    (copy / FUSION_FILE).write_bytes((fusion_bundle / FUSION_FILE).read_bytes()[:-10])
    with pytest.raises(ModelBundleError, match="sha256"):
        load_fusion(copy)


def test_features_of_another_size_are_refused(make_cases: MakeCases) -> None:
    with pytest.raises(ValueError, match="retrain"):
        collate(make_cases(2, seed=0), feature_dim=64)


def test_a_copy_leaves_the_fitted_calibration_and_thresholds_behind(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    # the calibration maps and suspicion thresholds were fitted on the source's aggregation
    # (here as the shipped bundle has them, beside a risk model); the copy, with another
    # lesion classifier, fusion or risk model to come, must not show probabilities through
    # them as if they were calibrated
    source = Path(shutil.copytree(tiny_bundle, tmp_path / "source"))
    save_calibration(Calibrator(method=CalibrationMethod.PLATT, slope=2.0, intercept=1.0), source)
    study_map = Calibrator(method=CalibrationMethod.PLATT, slope=1.0, intercept=0.5)
    save_calibration(study_map, source, name=STUDY_CALIBRATION_FILE)
    manifest = read_manifest(source)
    fitted = {"finding_score": 0.35, "findings_per_image": 5, "intermediate": 0.23, "high": 0.53}
    write_manifest(source, replace(manifest, thresholds=fitted))
    copy = copy_bundle(source, tmp_path / "copy", keep_fusion=True)
    assert not (copy / CALIBRATION_FILE).exists() and not (copy / STUDY_CALIBRATION_FILE).exists()
    assert read_manifest(copy).thresholds == {"finding_score": 0.35, "findings_per_image": 5}
    assert read_manifest(source).thresholds == fitted  # the source is only read
    # a run repeated into the same --out: an earlier run's maps must not stay in the copy
    for name in (CALIBRATION_FILE, STUDY_CALIBRATION_FILE):
        shutil.copy2(source / name, copy / name)
    again = copy_bundle(source, copy, keep_fusion=True)
    assert not (again / CALIBRATION_FILE).exists()
    assert not (again / STUDY_CALIBRATION_FILE).exists()
