"""Settings of the reading stage (a frozen dataclass; the service builds it once from Settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadOptions:
    """How :mod:`mammocad.io` turns a file into an :class:`~mammocad.structures.Image`.

    Args:
        voi_index: which of several VOI LUTs / window pairs to apply (0 = the first, the
            default of PS3.3 C.11.2 readers such as dicom3tools; see docs/ingestion.md). When the
            file has fewer, the first is used and the image carries a ``voi_index_unavailable``
            warning.
        prefer_voi_lut: a VOI LUT Sequence wins over Window Center/Width when both are present
            (PS3.3 C.8.11.3.1.5 lets either be applied; the LUT is the vendor's exact curve).
        fast_decoders: decode JPEG 2000, HTJ2K, JPEG-LS and JPEG Lossless with imagecodecs (2-4×
            faster, releases the GIL, bit-exact with pydicom's plugins) before falling back to
            pydicom's own plugins. ``False`` uses pydicom only.
        decoder_threads: threads one JPEG 2000 decode may use (imagecodecs / OpenJPEG).
        min_matrix: smallest accepted Rows and Columns; smaller matrices are header fixtures,
            thumbnails or icons, never a mammogram a model can read.
    """

    voi_index: int = 0
    prefer_voi_lut: bool = True
    fast_decoders: bool = True
    decoder_threads: int = 2
    min_matrix: int = 32

    def __post_init__(self) -> None:
        if self.voi_index < 0:
            raise ValueError(f"voi_index must be >= 0, got {self.voi_index}")
        if self.decoder_threads < 1:
            raise ValueError(f"decoder_threads must be >= 1, got {self.decoder_threads}")
        if self.min_matrix < 1:
            raise ValueError(f"min_matrix must be >= 1, got {self.min_matrix}")


DEFAULT_OPTIONS = ReadOptions()
