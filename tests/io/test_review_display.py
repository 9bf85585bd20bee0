"""Display pipeline against the LUT rules of PS3.3 C.11.1.1.1 / C.11.2.1.1 (review findings).

Each case builds a 12-bit ramp (every stored value once) so that the expected display value of
every input is known exactly from the standard's mapping rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from pydicom.dataset import Dataset

from mammocad.io import VoiKind, read_dicom, render

if TYPE_CHECKING:
    from conftest import DicomFactory

RAMP = np.arange(4096, dtype=np.uint16).reshape(64, 64)


def _lut(descriptor: list[int], data: np.ndarray | bytes, vr: str = "US") -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", descriptor)
    item.add_new(0x00283006, vr, data if isinstance(data, bytes) else [int(v) for v in data])
    return item


def _standard_mapping(values: np.ndarray, first: int, entries: np.ndarray) -> np.ndarray:
    """C.11.2.1.1: below the first value mapped -> first entry, past the end -> last entry."""
    return entries[np.clip(values.astype(np.int64) - first, 0, entries.size - 1)]


EIGHT_BIT = (np.arange(4096) // 16).astype(np.uint8)  # 12-bit input, 8-bit display LUT


@pytest.mark.parametrize(
    ("descriptor", "entries", "vr"),
    [
        # the usual 12 -> 8 bit LUT: one entry per 16-bit word
        ([4096, 0, 8], EIGHT_BIT, "US"),
        ([4096, 0, 8], EIGHT_BIT.astype("<u2").tobytes(), "OW"),
        # a short LUT starting at 1000: inputs past its end take the last entry
        ([256, 1000, 8], np.arange(256, dtype=np.uint8), "US"),
    ],
    ids=["us_4096_entries", "ow_4096_entries", "first_value_mapped_1000"],
)
def test_eight_bit_voi_lut_indices_are_not_wrapped(
    descriptor: list[int], entries: np.ndarray | bytes, vr: str, mg: DicomFactory
) -> None:
    # pydicom's apply_voi indexes an 8-bit LUT with uint8 indices: input 256 came back as
    # entry 0, so a 12-bit image with an 8-bit VOI LUT rendered as a sawtooth.
    ds = mg.reread(mg.mg_dataset(RAMP, VOILUTSequence=[_lut(descriptor, entries, vr)]))
    table = np.frombuffer(entries, "<u2") if isinstance(entries, bytes) else entries
    expected = _standard_mapping(RAMP, descriptor[1], table) / 255
    rendered = render(RAMP, ds)
    assert rendered.voi.kind is VoiKind.VOI_LUT
    np.testing.assert_allclose(rendered.pixels, expected, atol=1e-6)


def test_eight_bit_voi_lut_packed_two_entries_per_word(mg: DicomFactory) -> None:
    # PS3.3 C.11.2.1.1 (CP-522): 8-bit entries are stored "equivalent to 8 bits allocated",
    # two per 16-bit word; the value length (entries bytes, not 2 x entries) tells them apart.
    item = _lut([4096, 0, 8], EIGHT_BIT.tobytes(), "OW")
    image = read_dicom(mg.to_bytes(mg.mg_dataset(RAMP, VOILUTSequence=[item])))
    assert image.is_processed, image.rejection_text
    assert image.pixels is not None
    np.testing.assert_allclose(image.pixels, EIGHT_BIT.reshape(RAMP.shape) / 255, atol=1e-6)


def test_eight_bit_descriptor_with_wider_data_is_widened_not_rejected(mg: DicomFactory) -> None:
    # docs/ingestion.md: "If a LUT's data exceed what its descriptor declares, the range is
    # widened to the next power of two rather than saturating" -- an 8-bit descriptor over
    # 12-bit data made pydicom raise OverflowError and the file was rejected decode_failed.
    item = _lut([4096, 0, 8], np.arange(4096))
    image = read_dicom(mg.to_bytes(mg.mg_dataset(RAMP, VOILUTSequence=[item])))
    assert image.is_processed, image.rejection_text
    assert image.pixels is not None
    np.testing.assert_allclose(image.pixels, RAMP / 4095, atol=1e-6)


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_modality_lut_sequence_of_any_entry_depth(bits: int, mg: DicomFactory) -> None:
    # C.11.1.1.1: LUT Data entries of `bits` bits (editions before 2021 allowed 8-16; 12-bit
    # tables exist). pydicom's apply_modality_lut builds dtype "uint12" and raises TypeError,
    # so the file was rejected decode_failed.
    top = 2**bits - 1
    table = np.arange(4096) * top // 4095
    item = _lut([4096, 0, bits], table)
    item.ModalityLUTType = "US"
    ds = mg.mg_dataset(RAMP, ModalityLUTSequence=[item], WindowCenter=top / 2 + 0.5)
    ds.WindowWidth = top + 1  # the whole output range of the Modality LUT, linearly
    image = read_dicom(mg.to_bytes(ds))
    assert image.is_processed, image.rejection_text
    assert image.pixels is not None
    np.testing.assert_allclose(image.pixels, table.reshape(RAMP.shape) / top, atol=1e-6)
