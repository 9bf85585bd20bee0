"""Review of detector inference and the model bundle: the reported-findings threshold the
manifest sets is the one used, and bundles whose manifest is broken, inconsistent or one
folder down are refused with a sentence naming the file (not a traceback)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mammocad.detect import DetectorConfig, MammoDetector, build_detector
from mammocad.detect.bundle import (
    BundleManifest,
    read_manifest,
    sha256_of,
    write_manifest,
)
from mammocad.detect.predict import Detector
from mammocad.errors import ModelBundleError
from mammocad.ranker import RANKER_FILE, LesionRanker, feature_names, load_ranker
from mammocad.risk.model import RiskModel
from mammocad.structures import Image, ImageQuality, PreprocessedImage, Transform

from .conftest import TINY_DETECTOR

SIZE = (256, 208)


def _config(**changes: Any) -> DetectorConfig:
    return DetectorConfig(input_size=SIZE, **{**TINY_DETECTOR, **changes})


def _manifest(config: DetectorConfig, **thresholds: object) -> BundleManifest:
    return BundleManifest(
        name="tiny",
        version="0",
        sha256="0" * 64,
        detector=config,
        preprocessing={"input_size": list(SIZE)},
        thresholds=dict(thresholds),  # type: ignore[arg-type]
    )


class _FixedPredictor(nn.Module):
    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.logits.repeat(features.shape[0] // self.logits.shape[0], 1)
        return logits, torch.zeros(logits.shape[0], logits.shape[1] * 4)


def _rigged(config: DetectorConfig, monkeypatch: pytest.MonkeyPatch) -> MammoDetector:
    """One proposal, a mass at logit 1 (score ≈ 0.28 over background and seven classes)."""
    torch.manual_seed(0)
    model = build_detector(config)
    box = torch.tensor([[20.0, 40.0, 60.0, 80.0]])
    monkeypatch.setattr(
        model.rpn, "forward", lambda images, features, targets=None: ([box.clone()], {})
    )
    logits = torch.zeros(1, len(config.classes) + 1)
    logits[0, config.classes.index("mass") + 1] = 1.0
    model.roi_heads.box_predictor = _FixedPredictor(logits)
    return model.eval()


def _preprocessed() -> PreprocessedImage:
    transform = Transform(
        original_size=(1024, 832),
        flipped=False,
        crop_box=(0, 0, 832, 1024),
        scale_x=0.25,
        scale_y=0.25,
        input_size=SIZE,
    )
    return PreprocessedImage(
        image=Image(source="l_cc.dcm", sop_instance_uid="1.2.3", rows=1024, columns=832),
        input=np.random.default_rng(0).random((2, *SIZE), dtype=np.float32),
        transform=transform,
        tissue_mask=np.ones((1024, 832), dtype=bool),
        pectoral_mask=None,
        breast_box=(0.0, 0.0, 832.0, 1024.0),
        nipple=None,
        chest_wall_on_right=False,
        quality=ImageQuality(score=1.0, acceptable=True),
    )


def test_a_finding_score_below_the_configs_cut_off_is_the_one_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the bundle reports from 0.2; its detector config cuts RoI detections at 0.5
    config = _config(score_threshold=0.5)
    alone = Detector(
        model=_rigged(config, monkeypatch), manifest=_manifest(config, finding_score=0.2)
    )
    (prediction,) = alone.predict([_preprocessed()])
    # the same bundle where a fusion or risk model asks for candidates (Pipeline does this)
    with_candidates = Detector(
        model=_rigged(config, monkeypatch), manifest=_manifest(config, finding_score=0.2)
    )
    with_candidates.set_candidate_threshold(0.01)
    (reference,) = with_candidates.predict([_preprocessed()])
    assert [f.score for f in reference.findings] == pytest.approx([0.28], abs=0.01)
    assert [(f.id, f.score) for f in prediction.findings] == [
        (f.id, f.score) for f in reference.findings
    ]


@pytest.mark.parametrize("value", [None, "high", 35, -0.1, True])
def test_an_invalid_finding_score_is_a_bundle_error(value: object) -> None:
    config = _config()
    torch.manual_seed(0)
    model = build_detector(config)
    with pytest.raises(ModelBundleError, match="finding_score"):
        Detector(model=model, manifest=_manifest(config, finding_score=value))


def _write(folder: Path, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def _good() -> dict[str, Any]:
    return _manifest(_config(), finding_score=0.35).to_dict()


def test_a_newer_or_incomplete_manifest_names_its_file_and_what_to_do(tmp_path: Path) -> None:
    newer = _write(tmp_path / "newer", {**_good(), "format_version": 2})
    with pytest.raises(ModelBundleError, match="upgrade mammocad") as error:
        read_manifest(newer)
    assert str(newer / "manifest.json") in str(error.value)
    incomplete = _write(
        tmp_path / "incomplete", {k: v for k, v in _good().items() if k != "sha256"}
    )
    with pytest.raises(ModelBundleError, match="incomplete") as error:
        read_manifest(incomplete)
    assert str(incomplete / "manifest.json") in str(error.value)
    for name, data in (("null", None), ("list", []), ("number", 3)):
        with pytest.raises(ModelBundleError, match="not an object"):
            read_manifest(_write(tmp_path / name, data))


def test_manifest_classes_or_input_size_unlike_the_detectors_are_refused(tmp_path: Path) -> None:
    good = _good()
    assert read_manifest(_write(tmp_path / "good", good)).classes == _config().classes
    classes = [name for name in good["classes"] if name != "lymph_node"]
    for key, value in (("classes", classes), ("input_size", [1024, 832]), ("landmark", "mass")):
        with pytest.raises(ModelBundleError, match=key):
            read_manifest(_write(tmp_path / key, {**good, key: value}))


def test_a_folder_holding_the_bundle_one_level_down_names_it(tmp_path: Path) -> None:
    inner = _write(tmp_path / "runs" / "mammocad-detector", _good())
    with pytest.raises(ModelBundleError, match="not a model bundle folder") as error:
        read_manifest(tmp_path / "runs")
    assert f"{inner} holds one" in str(error.value)


def test_a_ranker_fitted_for_other_inputs_or_classes_is_refused(tmp_path: Path) -> None:
    manifest = _manifest(_config())
    lesion = manifest.detector.lesion_classes

    def bundle(name: str, classes: tuple[str, ...], size: tuple[int, int]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        model = RiskModel(features=feature_names(classes), baseline=0.0, trees=())
        ranker = LesionRanker(model=model, classes=classes, input_size=size)
        path = folder / RANKER_FILE
        path.write_text(json.dumps(ranker.to_dict()), encoding="utf-8")
        section = {"format_version": 1, "file": RANKER_FILE, "sha256": sha256_of(path)}
        write_manifest(folder, replace(manifest, ranker=section))
        return folder

    assert load_ranker(bundle("fits", lesion, SIZE)) is not None
    for name, classes, size in (
        ("size", lesion, (1024, 832)),
        ("classes", ("mass", "calcification"), SIZE),
    ):
        with pytest.raises(ModelBundleError, match="lesion ranker is invalid"):
            load_ranker(bundle(name, classes, size))


def test_analyze_names_the_bundle_inside_a_training_run_folder(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    from mammocad.commands.analyze import resolve_model

    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "mammocad-detector")
    with pytest.raises(ModelBundleError, match=r"mammocad-detector holds one: pass that folder"):
        resolve_model(run, environ={})
