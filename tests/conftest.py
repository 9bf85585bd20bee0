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
#: the rest of the tiny test bundle's detector configuration (tests building their own small
#: detectors start from it)
TINY_DETECTOR: dict[str, int] = {
    "fpn_channels": 32,
    "norm_groups": 8,
    "box_head_dim": 64,
    "malignancy_hidden": 16,
    "rpn_pre_nms_top_n_test": 150,
    "rpn_post_nms_top_n_test": 50,
}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real but untrained detector bundle at :data:`TINY_INPUT_SIZE`, built once a session.

    Its detections are arbitrary: tests that need known findings replace ``Detector.predict``.
    """
    import torch

    from mammocad.detect import DetectorConfig, build_detector, save_bundle
    from mammocad.preprocess import PreprocessParams

    torch.manual_seed(0)
    config = DetectorConfig(input_size=TINY_INPUT_SIZE, **TINY_DETECTOR)
    folder = tmp_path_factory.mktemp("bundle") / "tiny"
    preprocessing = PreprocessParams(input_size=TINY_INPUT_SIZE).to_dict()
    save_bundle(
        build_detector(config), folder, name="tiny-test", version="0.0.1",
        preprocessing=preprocessing,
    )  # fmt: skip
    return folder


CBIS_HEADER = (
    "patient_id,{density},left or right breast,image view,abnormality id,abnormality type,"
    "{shape},{margins},assessment,pathology,subtlety,image file path,cropped image file path,"
    "ROI mask file path"
)


@pytest.fixture
def cbis_case_descriptions(tmp_path: Path) -> tuple[Path, Path]:
    """A mass and a calcification file as CBIS-DDSM writes them: CRLF, the two spellings of
    the density column, and a quoted path ending in a newline (mass: the last column, calc:
    the cropped image column)."""
    mass = tmp_path / "mass_case_description_test_set.csv"
    calc = tmp_path / "calc_case_description_test_set.csv"
    mass_rows = [
        CBIS_HEADER.format(density="breast_density", shape="mass shape", margins="mass margins"),
        'P_00001,2,LEFT,CC,1,mass,OVAL,CIRCUMSCRIBED,3,BENIGN,4,a/1.dcm,a/2.dcm,"a/3.dcm\n"',
        'P_00001,2,LEFT,MLO,1,mass,OVAL,CIRCUMSCRIBED,3,BENIGN,4,b/1.dcm,b/2.dcm,"b/3.dcm\n"',
        'P_00002,0,RIGHT,CC,1,mass,IRREGULAR,SPICULATED,5,MALIGNANT,5,c/1.dcm,c/2.dcm,"c/3\n"',
    ]
    calc_rows = [
        CBIS_HEADER.format(
            density="breast density", shape="calc type", margins="calc distribution"
        ),
        'P_00001,2,LEFT,CC,1,calcification,PLEOMORPHIC,CLUSTERED,4,MALIGNANT,3,d/1,"d/2\n",d/3',
        "P_00001,2,RIGHT,CC,1,calcification,PUNCTATE,CLUSTERED,2,BENIGN_WITHOUT_CALLBACK,2,"
        'e/1,"e/2\n",e/3',
    ]
    mass.write_bytes(("\r\n".join(mass_rows) + "\r\n").encode())
    calc.write_bytes(("\r\n".join(calc_rows) + "\r\n").encode())
    return mass, calc
