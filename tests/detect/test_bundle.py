"""Bundle save → load round trip, sha256 verification and clear errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from mammocad.detect import DetectorConfig, MammoDetector, build_detector
from mammocad.detect.bundle import (
    MANIFEST_FILE,
    MODEL_CARD_FILE,
    WEIGHTS_FILE,
    load_bundle,
    read_manifest,
    save_bundle,
    set_card_section,
    sha256_of,
)
from mammocad.errors import ModelBundleError

PREPROCESSING = {"input_size": [256, 208], "second_channel": "clahe", "clahe_clip_limit": 2.0}
METRICS = {"froc/malignant/sens@0.25fp": {"value": 0.91, "ci_low": 0.85, "ci_high": 0.95}}


def save(model: MammoDetector, folder: Path, **options: object) -> None:
    save_bundle(
        model,
        folder,
        name="tiny",
        version="1.2.3",
        preprocessing=PREPROCESSING,
        thresholds={"finding_score": 0.2},
        training_data={"sources": ["toy"], "images": 8},
        metrics=METRICS,
        **options,  # type: ignore[arg-type]
    )


def test_round_trip_float32_is_exact(tiny_model: MammoDetector, tmp_path: Path) -> None:
    save(tiny_model, tmp_path, weights_dtype=torch.float32)
    loaded = load_bundle(tmp_path)
    assert not loaded.model.training
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    image = torch.rand(2, 256, 208, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours = tiny_model.eval()([image]).detections[0]
        theirs = loaded.model([image]).detections[0]
    assert torch.equal(ours.boxes, theirs.boxes) and torch.equal(ours.scores, theirs.scores)


def test_round_trip_float16_manifest_and_card(
    tiny_model: MammoDetector, tiny_config: DetectorConfig, tmp_path: Path
) -> None:
    save(tiny_model, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {WEIGHTS_FILE, MANIFEST_FILE, MODEL_CARD_FILE}
    raw = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert raw["sha256"] == sha256_of(tmp_path / WEIGHTS_FILE)
    assert raw["classes"] == list(tiny_config.classes) and raw["input_size"] == [256, 208]
    assert raw["preprocessing"] == PREPROCESSING and raw["weights_dtype"] == "float16"
    manifest = read_manifest(tmp_path)
    assert manifest.detector == tiny_config and manifest.metrics == METRICS
    assert manifest.thresholds == {"finding_score": 0.2}
    loaded = load_bundle(tmp_path).model
    # weights went through float16 and came back float32
    weight = tiny_model.backbone.body.conv1.weight
    restored = loaded.backbone.body.conv1.weight
    assert restored.dtype == torch.float32
    assert torch.equal(restored, weight.detach().half().float())
    card = (tmp_path / MODEL_CARD_FILE).read_text()
    assert "Not for clinical use" in card
    assert "| froc/malignant/sens@0.25fp | 0.910 | 0.850–0.950 |" in card
    assert '"clahe_clip_limit": 2.0' in card


def test_corrupted_weights_are_refused(tiny_model: MammoDetector, tmp_path: Path) -> None:
    save(tiny_model, tmp_path)
    weights = tmp_path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelBundleError, match="does not match its manifest"):
        load_bundle(tmp_path)


def test_missing_files_are_named(tiny_model: MammoDetector, tmp_path: Path) -> None:
    with pytest.raises(ModelBundleError, match="not a model bundle folder"):
        load_bundle(tmp_path)
    save(tiny_model, tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelBundleError, match=r"weights\.pt is missing"):
        load_bundle(tmp_path)


def test_broken_manifests_are_refused(tiny_model: MammoDetector, tmp_path: Path) -> None:
    save(tiny_model, tmp_path)
    manifest = tmp_path / MANIFEST_FILE
    good = json.loads(manifest.read_text())
    manifest.write_text("{not json")
    with pytest.raises(ModelBundleError, match="not valid JSON"):
        read_manifest(tmp_path)
    manifest.write_text(json.dumps({**good, "format_version": 99}))
    with pytest.raises(ModelBundleError, match="manifest format"):
        read_manifest(tmp_path)
    manifest.write_text(json.dumps({k: v for k, v in good.items() if k != "sha256"}))
    with pytest.raises(ModelBundleError, match="incomplete"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("value", [None, [0.35], "0.35"], ids=["null", "list", "string"])
@pytest.mark.parametrize("key", ["thresholds", "preprocessing", "detector", "training_data"])
def test_a_section_that_is_not_an_object_is_refused_when_read(
    tiny_model: MammoDetector, tmp_path: Path, key: str, value: object
) -> None:
    # a hand-edited manifest: before, it loaded, and the first reader of the section failed
    # with AttributeError ('NoneType' object has no attribute 'get') far from the file
    save(tiny_model, tmp_path)
    manifest = tmp_path / MANIFEST_FILE
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), key: value}))
    with pytest.raises(ModelBundleError, match=f"manifest section '{key}' is .*, not an object"):
        load_bundle(tmp_path)


def test_an_added_section_may_be_null_but_not_a_list(
    tiny_model: MammoDetector, tmp_path: Path
) -> None:
    save(tiny_model, tmp_path)
    manifest = tmp_path / MANIFEST_FILE
    good = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**good, "fusion": None}))
    assert read_manifest(tmp_path).fusion == {}  # null is none, as an absent section
    # a list of pairs would have passed dict() as an object it is not
    manifest.write_text(json.dumps({**good, "fusion": [["weights_file", "fusion.pt"]]}))
    with pytest.raises(ModelBundleError, match=r"'fusion' is \[\[.*, not an object"):
        read_manifest(tmp_path)


def test_weights_of_another_architecture_are_refused(
    tiny_model: MammoDetector, tiny_config: DetectorConfig, tmp_path: Path
) -> None:
    save(tiny_model, tmp_path)
    manifest = tmp_path / MANIFEST_FILE
    data = json.loads(manifest.read_text())
    data["detector"]["fpn_channels"] = 16  # the weights have 32
    manifest.write_text(json.dumps(data))
    with pytest.raises(ModelBundleError, match="does not fit the detector"):
        load_bundle(tmp_path)


def test_default_bundle_loads_on_cpu_within_five_seconds(tmp_path: Path) -> None:
    save(build_detector(DetectorConfig()), tmp_path)  # the full-size default architecture
    start = time.perf_counter()
    loaded = load_bundle(tmp_path, device="cpu")
    assert time.perf_counter() - start < 5.0  # measured ≈ 0.2 s on the 2-core machine
    assert loaded.manifest.input_size == (1024, 832)


def test_card_sections_are_replaced_in_place_or_appended(tmp_path: Path) -> None:
    (tmp_path / MODEL_CARD_FILE).write_text("# card\n\n## A\n\nold a\n\n## B\n\nb\n")
    set_card_section(tmp_path, "A", ["new a"])
    set_card_section(tmp_path, "C", ["c"])
    set_card_section(tmp_path, "C", ["c again"])
    text = (tmp_path / MODEL_CARD_FILE).read_text()
    assert text == "# card\n\n## A\n\nnew a\n\n## B\n\nb\n\n## C\n\nc again\n"
