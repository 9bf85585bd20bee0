"""Stored values → what a radiologist sees: float32 in [0, 1], 0 black, on the original grid.

The grayscale pipeline of DICOM PS3.4 N.2.1.1 / PS3.3 C.11:

1. Modality LUT (C.11.1): Modality LUT Sequence or Rescale Slope/Intercept.
2. VOI LUT (C.11.2): one VOI LUT Sequence item, else one Window Center/Width pair with its VOI
   LUT Function (LINEAR, LINEAR_EXACT, SIGMOID; C.11.2.1.2-3). See :func:`choose_voi` for which.
3. Normalise by the VOI output range (not the image's min/max, so one vendor's images all
   share one scale): ``[0, 2^n − 1]`` for a LUT with n-bit entries, pydicom's window output
   range for a window. With no VOI at all (digitised film such as CBIS-DDSM) the Modality LUT
   output is mapped linearly from its minimum to its maximum over non-padding pixels: that
   never clips, so the brightest microcalcifications are never saturated, and its worst case
   (one outlier pixel at the end of the stored range) is the full-bit-range mapping.
4. Clip to [0, 1]; invert once if Photometric Interpretation is MONOCHROME1 or Presentation
   LUT Shape is INVERSE (C.11.6.1; the MG IOD pairs the two, so they are one inversion, never
   two).
5. Pixel Padding Value / Pixel Padding Range Limit (C.7.5.1.1.2, C.7.6.3.1.2), compared with
   the STORED values, are masked and set to 0 (black).

Steps 1-4 are computed once per image as a lookup table over every possible stored value (≤ 65536
entries), then applied with one gather: identical to running pydicom's float64 functions on the
whole image, several times faster. The rescale and window formulas are pydicom's (float64, same
order of operations), computed here with the values :func:`choose_voi` and :func:`_rescale`
checked: pydicom re-reads the data set and raises on what the standard reads as a default (an
empty VOI LUT Function is LINEAR, C.11.2.1.2; an empty Rescale Slope/Intercept is no rescale).
LUT sequences are indexed here (:func:`_apply_lut`), not by pydicom: its ``apply_voi`` indexes an
8-bit LUT with uint8 indices (input 256 wraps to entry 0), and its ``apply_modality_lut`` fails on
10-15-bit entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian

from mammocad.io.tags import text_value
from mammocad.structures import BoolArray, FloatArray, Message, Severity

_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


class VoiKind(StrEnum):
    """Which VOI transformation was applied."""

    VOI_LUT = "voi_lut"
    WINDOW = "window"
    NONE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiChoice:
    """The VOI transformation chosen for an image, with what the file called it."""

    kind: VoiKind
    index: int = 0
    available: int = 0
    explanation: str | None = None
    center: float | None = None
    width: float | None = None
    function: str | None = None
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """``pixels`` float32[rows, columns] in [0, 1]; ``padding_mask`` bool[rows, columns] or
    ``None`` when the file declares no Pixel Padding Value."""

    pixels: FloatArray
    padding_mask: BoolArray | None
    voi: VoiChoice
    inverted: bool
    #: the VOI choice's messages, then the Modality LUT's (an ignored LUT or rescale)
    messages: tuple[Message, ...] = ()


def _values(ds: Dataset, keyword: str) -> list[Any]:
    try:
        value = ds.get(keyword)
    except Exception:
        return []
    if value is None or value == "":
        return []
    return list(value) if hasattr(value, "__len__") and not isinstance(value, str) else [value]


def _valid_lut(item: Dataset) -> bool:
    descriptor = _values(item, "LUTDescriptor")
    try:
        bits = int(descriptor[2]) if len(descriptor) == 3 else 0
    except (TypeError, ValueError):
        return False
    # 8 or 16 bits today, 8-16 in earlier editions (PS3.3 C.11.2.1.1)
    return 8 <= bits <= 16 and _has_entries(item, descriptor)


def _has_entries(item: Dataset, descriptor: list[Any]) -> bool:
    """True when LUT Data holds the entries LUT Descriptor declares: an anonymiser may blank
    it to zero length (PS3.5 7.4), and a LUT without entries cannot map anything, so the window
    is used instead; nor can one shorter than declared (every input past its end would take
    its last entry: a blank image)."""
    try:
        value = item.get("LUTData")
        count = int(descriptor[0]) or 2**16
    except Exception:
        return False
    if value is None:
        return False
    if isinstance(value, bytes):
        entries = len(value) // 2
    else:
        entries = len(value) if hasattr(value, "__len__") else 1
    packed = int(descriptor[2]) == 8 and entries == (count + 1) // 2  # see _lut_entries
    return entries > 0 and (entries >= count or packed)


def _little_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None:
        return str(syntax) != ExplicitVRBigEndian
    return ds.original_encoding[1] is not False


def _lut_entries(item: Dataset, ds: Dataset) -> npt.NDArray[np.int64]:
    """The entries of LUT Data (0028,3006), as many as LUT Descriptor declares (0 = 65536).

    US values and OW words hold one entry each, except that 8-bit entries may be packed two
    per 16-bit word, low byte first ("equivalent to 8 bits allocated", PS3.3 C.11.2.1.1,
    CP-522); the value length tells the two layouts apart.
    """
    count, _, bits = (int(v) for v in item.LUTDescriptor)
    count = count or 2**16
    value = item.LUTData
    if isinstance(value, bytes):
        words = np.frombuffer(value[: len(value) // 2 * 2], "<u2" if _little_endian(ds) else ">u2")
    else:  # US: a number, or a list of numbers
        words = np.atleast_1d(np.asarray(value, dtype=np.uint16))
    if bits == 8 and words.size == (count + 1) // 2:
        words = words.astype("<u2").view(np.uint8)
    return words[:count].astype(np.int64)


def _apply_lut(values: np.ndarray, item: Dataset, ds: Dataset) -> npt.NDArray[np.int64]:
    """Map ``values`` through a Modality or VOI LUT item (PS3.3 C.11.1.1.1, C.11.2.1.1).

    Inputs below the first value mapped take the first entry, inputs at or past the end the
    last. Non-integer inputs (a fractional rescale) are floored, as pydicom's ``apply_voi`` does.
    """
    entries = _lut_entries(item, ds)
    first = int(item.LUTDescriptor[1])
    if values.dtype.kind == "f":
        index = np.floor(values - first).astype(np.int64)
    else:
        index = values.astype(np.int64) - first
    np.clip(index, 0, max(entries.size - 1, 0), out=index)
    return entries[index]


def _window(ds: Dataset, index: int) -> tuple[float, float, str] | None:
    centers, widths = _values(ds, "WindowCenter"), _values(ds, "WindowWidth")
    if not centers or len(centers) != len(widths) or index >= len(centers):
        return None
    function = (text_value(ds, "VOILUTFunction") or "LINEAR").upper()
    try:
        center, width = float(centers[index]), float(widths[index])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(center) and math.isfinite(width)):
        return None  # "NaN" / "Inf": NaN pixels, or one flat grey
    valid_width = width >= 1 if function == "LINEAR" else width > 0
    return (center, width, function) if function in _FUNCTIONS and valid_width else None


def _explanation(ds: Dataset, keyword: str, index: int) -> str | None:
    values = _values(ds, keyword)
    if index >= len(values):
        return None
    return str(values[index]).strip() or None


def _candidate(ds: Dataset, kind: VoiKind, index: int) -> VoiChoice | None:
    if kind is VoiKind.VOI_LUT:
        luts = _values(ds, "VOILUTSequence")
        if index >= len(luts) or not _valid_lut(luts[index]):
            return None
        explanation = text_value(luts[index], "LUTExplanation")
        return VoiChoice(kind=kind, index=index, available=len(luts), explanation=explanation)
    window = _window(ds, index)
    if window is None:
        return None
    return VoiChoice(
        kind=kind,
        index=index,
        available=len(_values(ds, "WindowCenter")),
        explanation=_explanation(ds, "WindowCenterWidthExplanation", index),
        center=window[0],
        width=window[1],
        function=window[2],
    )


def choose_voi(ds: Dataset, *, index: int = 0, prefer_lut: bool = True) -> VoiChoice:
    """The VOI transformation to apply (PS3.3 C.11.2, C.8.11.3.1.5).

    A VOI LUT Sequence wins over Window Center/Width when both are present (``prefer_lut``);
    of several items or window pairs the one at ``index`` is used, by default the FIRST. The
    standard ranks alternatives only by order (C.11.2.1.2: "multiple alternative views"),
    vendors put their default first (GE: NORMAL, then HARDER, SOFTER; RSNA-2023 files: the
    first of four windows), and the first is what dicom3tools and pydicom apply by default.
    When ``index`` is out of range the first is used with a ``voi_index_unavailable``
    warning; an invalid window (width < 1 for LINEAR, unknown VOI LUT Function) is skipped.
    """
    order = [VoiKind.VOI_LUT, VoiKind.WINDOW] if prefer_lut else [VoiKind.WINDOW, VoiKind.VOI_LUT]
    for kind in order:
        chosen = _candidate(ds, kind, index)
        if chosen is not None:
            return chosen
        fallback = _candidate(ds, kind, 0) if index else None
        if fallback is not None:
            note = Message(
                code="voi_index_unavailable",
                severity=Severity.WARNING,
                text=f"VOI number {index} was asked for but the file has only "
                f"{fallback.available}; the first was applied.",
            )
            return replace(fallback, messages=(note,))
    return VoiChoice(kind=VoiKind.NONE)


def needs_inversion(ds: Dataset) -> bool:
    """MONOCHROME1 (minimum = white) or Presentation LUT Shape INVERSE: one inversion."""
    photometric = (text_value(ds, "PhotometricInterpretation") or "").upper()
    shape = (text_value(ds, "PresentationLUTShape") or "").upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def _number(ds: Dataset, keyword: str) -> float | None:
    """The first value of a numeric element; ``None`` when absent, empty or not a number."""
    values = _values(ds, keyword)
    try:
        return float(values[0]) if values else None
    except (TypeError, ValueError):
        return None


def _declared_rescale(ds: Dataset) -> tuple[float, float] | None:
    # PS3.3 C.11.1: the rescale applies when both values are present; a zero-length value
    # (blanked by an anonymiser, PS3.5 7.4) is no value
    slope, intercept = _number(ds, "RescaleSlope"), _number(ds, "RescaleIntercept")
    return None if slope is None or intercept is None else (slope, intercept)


def _rescale(ds: Dataset) -> tuple[float, float] | None:
    """Rescale (slope, intercept) to apply (PS3.3 C.11.1), or ``None`` for no rescale.

    A slope of 0 (or not finite) is ignored: it maps every pixel to the intercept, a blank
    image that no device means to send; the stored values still carry the picture, and the
    DX Image Module of the MG IOD fixes the rescale at the identity (slope 1, intercept 0:
    PS3.3 C.8.11.3.1.2).
    :func:`render` adds a ``rescale_ignored`` warning.
    """
    declared = _declared_rescale(ds)
    if declared is None or declared[0] == 0 or not all(map(math.isfinite, declared)):
        return None
    # a slope or intercept so large that the stored range maps to infinities (NaN pixels) or,
    # in float64, to one value is as blank as a slope of 0
    low, high = _stored_limits(ds)
    slope, intercept = declared
    mapped = (low * slope + intercept, high * slope + intercept)
    if not all(map(math.isfinite, mapped)) or mapped[0] == mapped[1]:
        return None
    return declared


def _stored_limits(ds: Dataset) -> tuple[float, float]:
    """Smallest and largest stored value Bits Stored and Pixel Representation allow."""
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation") or 0) == 0:
        return 0.0, float(2**bits - 1)
    return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)


def _modality_lut(ds: Dataset) -> Dataset | None:
    """The Modality LUT Sequence item to apply (PS3.3 C.11.1.1.1), or ``None``.

    An item that cannot map anything (no LUT Descriptor of 8-16 bits, or LUT Data blanked to
    zero length by an anonymiser, PS3.5 7.4) counts as absent, as an unusable VOI LUT item
    does: the rescale, if any, applies instead and :func:`render` adds a
    ``modality_lut_ignored`` warning.
    """
    items = _values(ds, "ModalityLUTSequence")
    return items[0] if items and _valid_lut(items[0]) else None


def _rescale_messages(ds: Dataset) -> tuple[Message, ...]:
    if _values(ds, "ModalityLUTSequence") and _modality_lut(ds) is None:
        return (
            Message(
                code="modality_lut_ignored",
                severity=Severity.WARNING,
                text="The Modality LUT Sequence (0028,3000) has no usable LUT (its LUT "
                "Descriptor or LUT Data is missing, empty or shorter than declared); the image "
                "was shown without it: "
                "check the image, and correct the sender's export if it looks wrong.",
            ),
        )
    if _modality_lut(ds) is not None or _declared_rescale(ds) is None or _rescale(ds) is not None:
        return ()
    slope, intercept = _values(ds, "RescaleSlope")[0], _values(ds, "RescaleIntercept")[0]
    return (
        Message(
            code="rescale_ignored",
            severity=Severity.WARNING,
            text=f"Rescale Slope (0028,1053) is {slope} and Rescale Intercept (0028,1052) "
            f"{intercept}, which would make every pixel the same value (or not a number); the "
            "stored values were shown without rescaling: check the image, and correct the "
            "sender's export if it looks wrong.",
        ),
    )


def _window_range(ds: Dataset) -> tuple[float, float]:
    """Output range of pydicom's ``apply_windowing`` (kept in step with pydicom 3.0), through
    the rescale that :func:`_rescale` accepts."""
    lut = _modality_lut(ds)
    if lut is not None:
        low, high = 0.0, float(2 ** int(lut.LUTDescriptor[2]) - 1)
    else:
        low, high = _stored_limits(ds)
    factors = _rescale(ds)
    if factors is not None:
        slope, intercept = factors
        low, high = low * slope + intercept, high * slope + intercept
    return low, high


def _modality(values: np.ndarray, ds: Dataset) -> np.ndarray:
    lut = _modality_lut(ds)
    if lut is not None:
        return _apply_lut(values, lut, ds)
    factors = _rescale(ds)
    if factors is None or factors == (1.0, 0.0):
        return values
    out = values.astype(np.float64) * factors[0]
    out += factors[1]
    if np.all(np.mod(out, 1) == 0) and np.all(np.abs(out) < 2**53):
        # integral rescale (slope 1, intercept -1024...): keep integers for the VOI LUT lookup
        out = out.astype(np.int64)
    return out


def _windowed(
    values: np.ndarray, choice: VoiChoice, low: float, high: float
) -> npt.NDArray[np.float64]:
    """Window ``values`` into [low, high] with the centre, width and function ``choice`` holds
    (PS3.3 C.11.2.1.2.1 LINEAR, C.11.2.1.3.2 LINEAR_EXACT, C.11.2.1.3.1 SIGMOID), computed as
    pydicom's ``apply_windowing`` computes them."""
    x = values.astype(np.float64)
    center, width = float(choice.center or 0), float(choice.width or 0)
    if choice.function == "SIGMOID":
        with np.errstate(over="ignore"):  # exp → inf far below the centre: the output is low
            out: npt.NDArray[np.float64] = (high - low) / (1 + np.exp(-4 * (x - center) / width))
        return out + low
    if choice.function == "LINEAR":
        center, width = center - 0.5, width - 1
    below, above = x <= center - width / 2, x > center + width / 2
    between = ~below & ~above
    out = np.where(below, low, high)
    out[between] = ((x[between] - center) / width + 0.5) * (high - low) + low
    return out


def _voi(values: np.ndarray, ds: Dataset, choice: VoiChoice) -> npt.NDArray[np.float64]:
    if choice.kind is VoiKind.VOI_LUT:
        return _apply_lut(values, ds.VOILUTSequence[choice.index], ds).astype(np.float64)
    if choice.kind is VoiKind.WINDOW:
        return _windowed(values, choice, *_window_range(ds))
    return values.astype(np.float64)


def _lut_top(item: Dataset, peak: int) -> float:
    """The output value a VOI LUT's white is: 2^bits − 1 of its descriptor, widened to the next
    power of two above ``peak`` when the descriptor under-states its entries' bits (which would
    otherwise saturate)."""
    high = 2 ** int(item.LUTDescriptor[2]) - 1
    return float(high if peak <= high else 2 ** peak.bit_length() - 1)


def voi_lut_fractions(ds: Dataset, index: int) -> tuple[int, FloatArray]:
    """VOI LUT ``index`` of ``ds`` as :func:`render` reads it: its first mapped value and its
    entries as fractions of its output range (0 black, 1 white before any inversion), for a
    copy of the display elsewhere (a presentation state)."""
    item = ds.VOILUTSequence[index]
    entries = _lut_entries(item, ds)
    top = _lut_top(item, int(entries.max()) if entries.size else 0)
    return int(item.LUTDescriptor[1]), _normalise(entries.astype(np.float64), 0.0, top, False)


def _output_range(
    ds: Dataset, choice: VoiChoice, voi: np.ndarray, valid: np.ndarray
) -> tuple[float, float]:
    if choice.kind is VoiKind.VOI_LUT:
        peak = int(voi.max()) if voi.size else 0
        return 0.0, _lut_top(ds.VOILUTSequence[choice.index], peak)
    if choice.kind is VoiKind.WINDOW:
        return _window_range(ds)
    chosen = voi[valid]
    return (float(chosen.min()), float(chosen.max())) if chosen.size else (0.0, 0.0)


def _normalise(values: np.ndarray, low: float, high: float, invert: bool) -> FloatArray:
    span = high - low
    out = (values - low) / span if span else np.zeros_like(values)
    np.clip(out, 0.0, 1.0, out=out)
    if invert:
        out = 1.0 - out
    return out.astype(np.float32)


def _padding(values: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """Padding flags for stored ``values``; ``None`` when no Pixel Padding Value is given."""
    try:
        pad = ds.get("PixelPaddingValue")
        limit = ds.get("PixelPaddingRangeLimit")
        if pad is None or isinstance(pad, bytes):
            return None
        low, high = sorted((int(pad), int(limit if limit is not None else pad)))
    except (TypeError, ValueError):
        return None
    return (values >= low) & (values <= high)


def _domain(dtype: np.dtype[Any]) -> tuple[np.ndarray, np.dtype[Any]] | None:
    """Every value of a ≤16-bit integer dtype, ordered by its unsigned bit pattern."""
    if dtype.kind not in "ui" or dtype.itemsize > 2:
        return None
    index_dtype = np.dtype(f"u{dtype.itemsize}")
    return np.arange(2 ** (8 * dtype.itemsize), dtype=index_dtype).view(dtype), index_dtype


def render(
    stored: np.ndarray, ds: Dataset, *, voi_index: int = 0, prefer_voi_lut: bool = True
) -> Rendered:
    """Run the display pipeline of this module on ``stored`` (``[rows, columns]``)."""
    choice = choose_voi(ds, index=voi_index, prefer_lut=prefer_voi_lut)
    invert = needs_inversion(ds)
    domain = _domain(stored.dtype)
    if domain is None:  # floats or 32-bit data: compute on the image itself
        padding = _padding(stored, ds)
        voi = _voi(_modality(stored, ds), ds, choice)
        valid = ~padding if padding is not None else np.ones(stored.shape, dtype=bool)
        pixels = _normalise(voi, *_output_range(ds, choice, voi, valid), invert)
    else:
        values, index_dtype = domain
        index = stored.view(index_dtype)
        pad_table = _padding(values, ds)
        voi = _voi(_modality(values, ds), ds, choice)
        valid = np.ones(values.shape, dtype=bool)
        if choice.kind is VoiKind.NONE:  # min/max over the values present, not the dtype
            valid = np.bincount(index.ravel(), minlength=values.size) > 0
            if pad_table is not None:
                valid &= ~pad_table
        table = _normalise(voi, *_output_range(ds, choice, voi, valid), invert)
        pixels = table[index]
        padding = pad_table[index] if pad_table is not None else None
    if padding is not None:
        pixels[padding] = 0.0
    messages = choice.messages + _rescale_messages(ds)
    return Rendered(
        pixels=pixels, padding_mask=padding, voi=choice, inverted=invert, messages=messages
    )


def display_range(stored: np.ndarray, header: Dataset) -> tuple[float, float] | None:
    """The values :func:`render` stretches from black to white in an image without VOI
    (``stored``: its stored pixel values): the lowest and highest value present after the
    modality transformation, Pixel Padding left out, for a copy of the display elsewhere (a
    presentation state's window). ``None`` when the image has a VOI of its own or holds one
    value only."""
    if choose_voi(header).kind is not VoiKind.NONE:
        return None
    values = _modality(stored, header)
    padding = _padding(stored, header)
    present = values[~padding] if padding is not None else values
    if not present.size or float(present.min()) >= float(present.max()):
        return None
    return float(present.min()), float(present.max())
