"""Display pipeline: the lookup table gives exactly what pydicom's functions give."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut
from pydicom.uid import JPEG2000Lossless

from mammocad.io import ReadOptions, VoiKind, choose_voi, read_dicom, render

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import DicomFactory

GE_HEADERS = "dicom-samples/openrem-headers"


def _lut_item(bits: int, entries: int, first: int, explanation: str, vr: str = "US") -> Dataset:
    item = Dataset()
    ramp = np.round((np.linspace(0, 1, entries) ** 0.7) * (2**bits - 1)).astype(np.uint16)
    item.LUTDescriptor = [entries, first, bits]  # a vendor's contrast curve
    item.LUTExplanation = explanation
    data = ramp.tobytes() if vr == "OW" else [int(v) for v in ramp]  # LUT Data is US or OW
    item.add_new(0x00283006, vr, data)
    return item


@dataclass
class Case:
    """A display case: attributes to set, expected output range, inversion, VOI kind."""

    attributes: dict[str, Any]
    low: float | None  # None: min/max of the non-padding values (no VOI)
    high: float | None
    invert: bool = False
    kind: VoiKind = VoiKind.WINDOW
    bits: int = 12
    signed: bool = False
    prefer_lut: bool = True
    index: int = 0
    padding: dict[str, int] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "linear": Case({"WindowCenter": 2000, "WindowWidth": 1500}, 0, 4095),
    "linear_exact": Case(
        {"WindowCenter": 2000, "WindowWidth": 1500, "VOILUTFunction": "LINEAR_EXACT"}, 0, 4095
    ),
    "sigmoid": Case(
        {"WindowCenter": 1800, "WindowWidth": 900, "VOILUTFunction": "SIGMOID"}, 0, 4095
    ),
    "several_windows_first": Case(
        {
            "WindowCenter": [2000, 2200, 1800],
            "WindowWidth": [1500, 800, 2500],
            "WindowCenterWidthExplanation": ["NORMAL", "HARDER", "SOFTER"],
        },
        0,
        4095,
    ),
    "several_windows_third": Case(
        {"WindowCenter": [2000, 2200, 1800], "WindowWidth": [1500, 800, 2500]}, 0, 4095, index=2
    ),
    "voi_lut_wins": Case(
        {
            "WindowCenter": 2000,
            "WindowWidth": 1500,
            "VOILUTSequence": [_lut_item(12, 3000, 500, "NORMAL")],
        },
        0,
        4095,
        kind=VoiKind.VOI_LUT,
    ),
    "window_when_asked": Case(
        {
            "WindowCenter": 2000,
            "WindowWidth": 1500,
            "VOILUTSequence": [_lut_item(12, 3000, 500, "NORMAL")],
        },
        0,
        4095,
        prefer_lut=False,
    ),
    "voi_lut_16bit_ow": Case(
        {"VOILUTSequence": [_lut_item(16, 4096, 0, "A", vr="OW")]}, 0, 65535, kind=VoiKind.VOI_LUT
    ),
    "rescale": Case(
        {"RescaleSlope": 2, "RescaleIntercept": -100, "WindowCenter": 3000, "WindowWidth": 4000},
        -100,
        8090,
    ),
    "monochrome1_inverse": Case(
        {
            "PhotometricInterpretation": "MONOCHROME1",
            "PresentationLUTShape": "INVERSE",
            "WindowCenter": 2000,
            "WindowWidth": 1500,
        },
        0,
        4095,
        invert=True,
    ),
    "monochrome1_alone": Case(
        {"PhotometricInterpretation": "MONOCHROME1", "WindowCenter": 2000, "WindowWidth": 1500},
        0,
        4095,
        invert=True,
    ),
    "monochrome2_inverse": Case(
        {"PresentationLUTShape": "INVERSE", "WindowCenter": 2000, "WindowWidth": 1500},
        0,
        4095,
        invert=True,
    ),
    "monochrome2_identity": Case(
        {"PresentationLUTShape": "IDENTITY", "WindowCenter": 2000, "WindowWidth": 1500}, 0, 4095
    ),
    "no_voi_film": Case({}, None, None, kind=VoiKind.NONE, bits=16),
    "no_voi_rescaled": Case(
        {"RescaleSlope": 0.5, "RescaleIntercept": 10}, None, None, kind=VoiKind.NONE
    ),
    "padding_value": Case(
        {"WindowCenter": 2000, "WindowWidth": 1500}, 0, 4095, padding={"PixelPaddingValue": 0}
    ),
    "padding_range_monochrome1": Case(
        {"PhotometricInterpretation": "MONOCHROME1", "VOILUTFunction": "SIGMOID"}
        | {"WindowCenter": [2000, 1900, 2100, 2000], "WindowWidth": [1200, 900, 1500, 2000]},
        0,
        4095,
        invert=True,
        padding={"PixelPaddingValue": 4095, "PixelPaddingRangeLimit": 3900},
    ),
    "no_voi_with_padding": Case(
        {}, None, None, kind=VoiKind.NONE, padding={"PixelPaddingValue": 0}
    ),
    "signed": Case({"WindowCenter": 0, "WindowWidth": 3000}, -2048, 2047, signed=True),
    "eight_bit": Case({"WindowCenter": 120, "WindowWidth": 200}, 0, 255, bits=8),
    "modality_lut_sequence": Case(
        {"WindowCenter": 30000, "WindowWidth": 40000}, 0, 65535, padding={}
    ),
}


def _stored(case: Case, mg: DicomFactory) -> np.ndarray:
    pixels = mg.phantom(bits=case.bits, seed=3)
    if case.padding.get("PixelPaddingValue") == 0:
        pixels[:, -20:] = 0  # a collimated strip of padding
    if case.padding.get("PixelPaddingValue") == 4095:
        pixels[:, -20:] = 4095 - np.arange(20, dtype=np.uint16) * 9  # 3924..4095: padding range
    if case.signed:
        return (pixels.astype(np.int32) - 2048).astype(np.int16)
    return pixels.astype(np.uint8) if case.bits == 8 else pixels


def _dataset(case: Case, name: str, stored: np.ndarray, mg: DicomFactory) -> Dataset:
    ds = mg.mg_dataset(stored, bits_stored=case.bits, **case.attributes, **case.padding)
    if name == "modality_lut_sequence":
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 16]
        item.ModalityLUTType = "US"
        item.add_new(0x00283006, "US", [4 * v for v in range(4096)])
        ds.ModalityLUTSequence = [item]
    return mg.reread(ds)


def _reference(case: Case, ds: Dataset, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pydicom's own functions on the whole image, normalised as docs/ingestion.md says."""
    values = apply_modality_lut(stored, ds)
    values = apply_voi_lut(values, ds, index=case.index, prefer_lut=case.prefer_lut)
    values = values.astype(np.float64)
    pad = np.zeros(stored.shape, dtype=bool)
    if case.padding:
        limit = case.padding.get("PixelPaddingRangeLimit", case.padding["PixelPaddingValue"])
        low_pad, high_pad = sorted((case.padding["PixelPaddingValue"], limit))
        pad = (stored >= low_pad) & (stored <= high_pad)
    low = values[~pad].min() if case.low is None else case.low
    high = values[~pad].max() if case.high is None else case.high
    expected = np.clip((values - low) / (high - low), 0, 1)
    if case.invert:
        expected = 1 - expected
    expected[pad] = 0
    return expected, pad


@pytest.mark.parametrize("name", list(CASES))
def test_render_matches_pydicom(name: str, mg: DicomFactory) -> None:
    case = CASES[name]
    stored = _stored(case, mg)
    ds = _dataset(case, name, stored, mg)
    rendered = render(stored, ds, voi_index=case.index, prefer_voi_lut=case.prefer_lut)
    expected, pad = _reference(case, ds, stored)
    assert rendered.pixels.dtype == np.float32 and rendered.pixels.shape == stored.shape
    assert rendered.voi.kind is case.kind and rendered.voi.index == case.index
    assert rendered.inverted is case.invert
    np.testing.assert_allclose(rendered.pixels, expected, rtol=0, atol=1e-6)
    assert rendered.pixels.min() >= 0.0 and rendered.pixels.max() <= 1.0
    if case.padding:
        assert rendered.padding_mask is not None and pad.any()
        np.testing.assert_array_equal(rendered.padding_mask, pad)
    else:
        assert rendered.padding_mask is None


def test_breast_is_brighter_than_background_in_every_photometry(mg: DicomFactory) -> None:
    # MONOCHROME1 stores dense tissue LOW; after the pipeline it must be bright as in MONOCHROME2
    pixels = mg.phantom()
    mono2 = mg.mg_dataset(pixels, WindowCenter=2000, WindowWidth=4000)
    mono1 = mg.mg_dataset(
        (4095 - pixels).astype(np.uint16),
        PhotometricInterpretation="MONOCHROME1",
        PresentationLUTShape="INVERSE",
        WindowCenter=2096,  # LINEAR centres sit half a value off (PS3.3 C.11.2.1.2.1)
        WindowWidth=4000,
    )
    for ds in (mono2, mono1):
        out = render(ds.pixel_array, ds).pixels
        assert out[:, :40].mean() > out[:, -20:].mean() + 0.3  # chest-wall tissue vs background
    np.testing.assert_allclose(
        render(mono1.pixel_array, mono1).pixels, render(pixels, mono2).pixels, atol=1e-6
    )


def test_float_input_takes_the_direct_path(mg: DicomFactory) -> None:
    pixels = mg.phantom()
    ds = mg.mg_dataset(pixels, WindowCenter=2000, WindowWidth=1500, VOILUTFunction="SIGMOID")
    from_lut = render(pixels, ds).pixels
    direct = render(pixels.astype(np.float64), ds).pixels
    np.testing.assert_allclose(direct, from_lut, atol=1e-6)


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({"WindowCenter": 2000, "WindowWidth": 0}, VoiKind.NONE),  # LINEAR needs width >= 1
        ({"WindowCenter": 2000, "WindowWidth": 0.5, "VOILUTFunction": "SIGMOID"}, VoiKind.WINDOW),
        ({"WindowCenter": 2000, "WindowWidth": 100, "VOILUTFunction": "CUBIC"}, VoiKind.NONE),
        ({"WindowCenter": [2000, 1000], "WindowWidth": [100]}, VoiKind.NONE),
        # not numbers a window can use: NaN pixels or one flat grey (PS3.3 C.11.2.1.2)
        ({"WindowCenter": "NaN", "WindowWidth": 1500}, VoiKind.NONE),
        ({"WindowCenter": 2000, "WindowWidth": "Inf", "VOILUTFunction": "SIGMOID"}, VoiKind.NONE),
    ],
)
def test_invalid_windows_are_skipped(
    attributes: dict[str, Any], kind: VoiKind, mg: DicomFactory
) -> None:
    ds = mg.mg_dataset(**attributes)
    assert choose_voi(ds).kind is kind
    rendered = render(ds.pixel_array, ds)
    assert np.isfinite(rendered.pixels).all()


def test_missing_voi_index_falls_back_to_first_with_warning(mg: DicomFactory) -> None:
    ds = mg.mg_dataset(WindowCenter=[2000, 2100], WindowWidth=[1500, 1000])
    choice = choose_voi(ds, index=5)
    assert choice.kind is VoiKind.WINDOW and choice.index == 0
    assert [m.code for m in choice.messages] == ["voi_index_unavailable"]
    image = read_dicom(mg.to_bytes(ds), options=ReadOptions(voi_index=5))
    assert image.is_processed and "voi_index_unavailable" in [m.code for m in image.messages]


def test_read_dicom_runs_the_pipeline_on_compressed_monochrome1(mg: DicomFactory) -> None:
    pixels = mg.phantom()
    ds = mg.mg_dataset(
        pixels,
        PhotometricInterpretation="MONOCHROME1",
        PresentationLUTShape="INVERSE",
        WindowCenter=[1800, 2000],
        WindowWidth=[1000, 1600],
        VOILUTFunction="SIGMOID",
        PixelPaddingValue=4095,
    )
    encoded = mg.encode(ds, JPEG2000Lossless)
    image = read_dicom(mg.to_bytes(encoded))
    expected, _ = _reference(
        Case({}, 0, 4095, invert=True, padding={"PixelPaddingValue": 4095}), encoded, pixels
    )
    assert image.pixels is not None and image.padding_mask is not None
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert image.padding_mask.sum() == (pixels == 4095).sum()


@pytest.mark.parametrize("name", ["GE_Seno_1_ForPresentation", "GE_Seno_2_ForPresentation"])
def test_ge_sigmoid_multi_window_headers_choose_the_first_voi_lut(
    name: str, shared_data: Path
) -> None:
    ds = pydicom.dcmread(shared_data / GE_HEADERS / f"MG-Im-{name}.dcm")
    choice = choose_voi(ds)
    # three VOI LUTs and three SIGMOID windows: the LUT wins, and the first one, NORMAL
    assert (choice.kind, choice.index, choice.available) == (VoiKind.VOI_LUT, 0, 3)
    assert choice.explanation == "NORMAL"
    window = choose_voi(ds, prefer_lut=False)
    assert (window.kind, window.index, window.function) == (VoiKind.WINDOW, 0, "SIGMOID")
    assert window.explanation == "NORMAL"
    assert (window.center, window.width) == (float(ds.WindowCenter[0]), 380.0)
    softer = choose_voi(ds, index=2)
    assert softer.explanation == "SOFTER" and not softer.messages
    # the chosen LUT spans 12 bits: a stored value on the LUT's ramp renders mid-grey
    out = render(ds.pixel_array, ds).pixels
    assert 0.0 < out.min() <= out.max() < 1.0


def _blanked(ds: Dataset, **elements: tuple[int, str]) -> Dataset:
    """``ds`` with each named element present but zero-length, as anonymisers leave Type 3
    and Type 1C elements they blank (PS3.5 7.4)."""
    for tag, vr in elements.values():
        ds.add_new(tag, vr, None)
    return ds


def test_empty_voi_lut_function_is_linear(mg: DicomFactory) -> None:
    # PS3.3 C.11.2.1.2: without a VOI LUT Function the window is LINEAR; pydicom's
    # apply_windowing raised on the empty value, which rejected a good image
    pixels = mg.phantom()
    blank = _blanked(
        mg.mg_dataset(pixels, WindowCenter=2000, WindowWidth=1500),
        function=(0x00281056, "CS"),
    )
    linear = mg.mg_dataset(pixels, WindowCenter=2000, WindowWidth=1500, VOILUTFunction="LINEAR")
    image = read_dicom(mg.to_bytes(blank))
    assert image.is_processed, image.rejection_text
    assert choose_voi(mg.reread(blank)).function == "LINEAR"
    np.testing.assert_array_equal(image.pixels, read_dicom(mg.to_bytes(linear)).pixels)


def test_empty_rescale_is_no_rescale(mg: DicomFactory) -> None:
    pixels = mg.phantom()
    blank = _blanked(
        mg.mg_dataset(pixels, WindowCenter=2000, WindowWidth=1500),
        slope=(0x00281053, "DS"),
        intercept=(0x00281052, "DS"),
    )
    plain = mg.mg_dataset(pixels, WindowCenter=2000, WindowWidth=1500)
    image = read_dicom(mg.to_bytes(blank))
    assert image.is_processed, image.rejection_text
    assert "rescale_ignored" not in [m.code for m in image.messages]
    np.testing.assert_array_equal(image.pixels, read_dicom(mg.to_bytes(plain)).pixels)


@pytest.mark.parametrize("window", [True, False], ids=["window", "no_voi"])
def test_rescale_slope_zero_is_ignored_with_a_warning(window: bool, mg: DicomFactory) -> None:
    # slope 0 maps every pixel to the intercept (PS3.3 C.11.1): a blank image, and the DX
    # Image Module fixes MG rescales at slope 1 (C.8.11.3.1.2); show the stored values instead
    pixels = mg.phantom()
    voi = {"WindowCenter": 2000, "WindowWidth": 1500} if window else {}
    zero = mg.mg_dataset(pixels, RescaleSlope=0, RescaleIntercept=0, **voi)
    image = read_dicom(mg.to_bytes(zero))
    assert image.is_processed and image.pixels is not None
    assert image.pixels.max() > image.pixels.min()
    np.testing.assert_array_equal(
        image.pixels, read_dicom(mg.to_bytes(mg.mg_dataset(pixels, **voi))).pixels
    )
    warnings = [m for m in image.messages if m.code == "rescale_ignored"]
    assert len(warnings) == 1 and warnings[0].severity.value == "warning"
    assert "Rescale Slope" in warnings[0].text


def test_voi_lut_without_entries_is_skipped(mg: DicomFactory) -> None:
    # a VOI LUT item whose LUT Data was blanked cannot map anything: the window applies
    pixels = mg.phantom()
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.add_new(0x00283006, "US", None)
    ds = mg.mg_dataset(pixels, WindowCenter=2000, WindowWidth=1500, VOILUTSequence=[item])
    assert choose_voi(mg.reread(ds)).kind is VoiKind.WINDOW
    image = read_dicom(mg.to_bytes(ds))
    assert image.is_processed, image.rejection_text
    windowed = mg.mg_dataset(pixels, WindowCenter=2000, WindowWidth=1500)
    np.testing.assert_array_equal(image.pixels, read_dicom(mg.to_bytes(windowed)).pixels)


@pytest.mark.parametrize("blank", ["lut_data", "lut_descriptor"])
def test_unusable_modality_lut_is_ignored_with_a_warning(blank: str, mg: DicomFactory) -> None:
    # a Modality LUT item that cannot map anything (LUT Data blanked by an anonymiser, PS3.5
    # 7.4, or no LUT Descriptor; PS3.3 C.11.1.1.1) is treated as absent, as an unusable VOI
    # LUT item is, instead of rejecting a readable mammogram as an unexpected error
    pixels = mg.phantom()
    item = Dataset()
    if blank == "lut_data":
        item.LUTDescriptor = [4096, 0, 16]
        item.add_new(0x00283006, "US", None)
    else:
        item.add_new(0x00283006, "US", [4 * v for v in range(4096)])
    voi = {"WindowCenter": 2000, "WindowWidth": 1500}
    ds = mg.mg_dataset(pixels, ModalityLUTSequence=[item], **voi)
    image = read_dicom(mg.to_bytes(ds))
    assert image.is_processed, image.rejection_text
    plain = read_dicom(mg.to_bytes(mg.mg_dataset(pixels, **voi)))
    np.testing.assert_array_equal(image.pixels, plain.pixels)
    warnings = [m for m in image.messages if m.code == "modality_lut_ignored"]
    assert len(warnings) == 1 and warnings[0].severity.value == "warning"
