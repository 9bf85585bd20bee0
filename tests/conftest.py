"""Shared fixtures. Real data lives in ../shared/data beside the checkout (CI has it, users
usually don't): tests that need it use the ``shared_data`` fixture and skip cleanly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = PROJECT_ROOT / "src" / "mammocad" / "schemas" / "result.schema.json"


def shared_data_dir() -> Path:
    """``$MAMMOCAD_SHARED_DATA`` or ``../shared/data`` relative to the project root."""
    override = os.environ.get("MAMMOCAD_SHARED_DATA")
    return Path(override) if override else PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not available at {path} (set MAMMOCAD_SHARED_DATA)")
    return path


#: model-input size of the tiny test bundle: small enough for a CPU forward pass in ~0.1 s
TINY_INPUT_SIZE = (256, 208)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real but untrained detector bundle at :data:`TINY_INPUT_SIZE`, built once a session.

    Its detections are arbitrary: tests that need known findings replace ``Detector.predict``.
    """
    import torch

    from mammocad.detect import DetectorConfig, build_detector, save_bundle
    from mammocad.preprocess import PreprocessParams

    torch.manual_seed(0)
    config = DetectorConfig(
        input_size=TINY_INPUT_SIZE,
        fpn_channels=32,
        norm_groups=8,
        box_head_dim=64,
        malignancy_hidden=16,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=50,
    )
    folder = tmp_path_factory.mktemp("bundle") / "tiny"
    preprocessing = PreprocessParams(input_size=TINY_INPUT_SIZE).to_dict()
    save_bundle(
        build_detector(config), folder, name="tiny-test", version="0.0.1",
        preprocessing=preprocessing,
    )  # fmt: skip
    return folder
