"""Exception hierarchy: one root, one family per stage; every message says what to do.

Only ``mammocad.serve`` maps these to HTTP status codes. Misuse of the API (wrong types, wrong
shapes) raises the built-in ``TypeError`` / ``ValueError`` instead.
"""

from __future__ import annotations

from enum import Enum


class RejectionCode(str, Enum):
    """Why an input file was not processed; the values are the schema's ``rejection_code``."""

    NOT_DICOM = "not_dicom"
    UNREADABLE = "unreadable_file"
    NOT_MAMMOGRAPHY = "not_mammography"
    FOR_PROCESSING = "for_processing"
    NO_PIXEL_DATA = "no_pixel_data"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    DECODE_FAILED = "decode_failed"
    TRUNCATED_PIXEL_DATA = "truncated_pixel_data"
    MULTI_FRAME = "multi_frame"
    UNSUPPORTED_PIXEL_FORMAT = "unsupported_pixel_format"
    DUPLICATE = "duplicate_instance"
    NO_TISSUE = "no_tissue"
    MISSING_METADATA = "missing_metadata"
    #: no image of the study passed the quality gate (mammocad.quality): nothing is fit to read
    QUALITY = "unacceptable_quality"
    #: a fault in mammocad itself on this image (logged with its traceback); never the input's
    INTERNAL_ERROR = "internal_error"
    #: the study's output folder holds files mammocad did not write, which it leaves alone:
    #: no result could be written (the user's to resolve, not a fault of mammocad's)
    OUTPUT_CONFLICT = "output_conflict"


class MammocadError(Exception):
    """Root of every error mammocad raises on purpose."""


class IngestError(MammocadError):
    """A file cannot be turned into an image; the file is rejected, the study goes on.

    Args:
        code: machine-readable reason, one of :class:`RejectionCode`.
        message: one sentence saying what is wrong and what to do about it.
    """

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[IngestError], tuple[RejectionCode, str]]:
        # keeps the code when the error crosses a process boundary (worker pools, Celery)
        return (type(self), (self.code, self.message))


class PreprocessError(MammocadError):
    """Preprocessing could not prepare an image (for example: no breast tissue found)."""

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[PreprocessError], tuple[RejectionCode, str]]:
        return (type(self), (self.code, self.message))


class ModelBundleError(MammocadError):
    """A model bundle is missing, incomplete or does not match its manifest."""


class SynthesisError(MammocadError):
    """Phantom generation was asked for something it cannot produce."""
