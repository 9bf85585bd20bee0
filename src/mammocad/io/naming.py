"""Laterality and view from text: file names, patient IDs, series descriptions.

This is the last resort after the coded attributes (Image Laterality, View Position, View Code
Sequence) and is deliberately strict: a token must stand alone (``LEFT_CC``, ``R-MLO``, ``RMLO``,
``A_0010_1.RIGHT_MLO``); one letter ``L``/``R`` counts only next to a view token or a spelled-out
projection; ``ML``/``LM`` count only next to a side ("10 ml" is no view); ``AT`` never counts;
and a text that names two different sides or two different views says nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from mammocad.structures import Laterality, ViewPosition

# View tokens accepted in free text. AT (axillary tail) is left out: "at" is an English word,
# and the axillary tail view is recorded in View Position / View Modifier Code Sequence.
_VIEW_TOKENS: dict[str, ViewPosition] = {
    "CC": ViewPosition.CC,
    "MLO": ViewPosition.MLO,
    "ML": ViewPosition.ML,
    "LM": ViewPosition.LM,
    "XCCL": ViewPosition.XCCL,
    "XCCM": ViewPosition.XCCM,
    "SIO": ViewPosition.SIO,
}
# ML and LM are also abbreviations (millilitre...): they count only next to a side letter/word
_WEAK_VIEWS = {"ML", "LM"}
# words of spelled-out projections, next to which a lone L/R also counts ("R CRANIO-CAUDAL")
_PHRASE_WORDS = {"CRANIO", "CRANIOCAUDAL", "CAUDAL", "MEDIO", "MEDIOLATERAL", "OBLIQUE"}
_SIDE_WORDS = {"LEFT": Laterality.L, "RIGHT": Laterality.R}
_SIDE_LETTERS = {"L": Laterality.L, "R": Laterality.R}
_COMBINED = re.compile(r"^([LR])(CC|MLO|ML|LM|XCCL|XCCM|SIO)$")
# Spelled-out projections (checked on the space-joined tokens); longest first.
_PHRASES: tuple[tuple[re.Pattern[str], ViewPosition], ...] = (
    (re.compile(r"\bMEDIO ?LATERAL OBLIQUE\b"), ViewPosition.MLO),
    (re.compile(r"\bCRANIO ?CAUDAL\b"), ViewPosition.CC),
    (re.compile(r"\bMEDIO ?LATERAL\b"), ViewPosition.ML),
    (re.compile(r"\bLATERO ?MEDIAL\b"), ViewPosition.LM),
)
# CBIS-DDSM identifiers: "Mass-Test_P_00173_LEFT_CC", "Calc-Training_P_01234_RIGHT_MLO_1".
_CBIS_ID = re.compile(
    r"^(?:(?:MASS|CALC)-(?:TRAINING|TEST)_)?(P_\d+)(?:_(?:LEFT|RIGHT)_(?:CC|MLO)(?:_\d+)?)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class TextEvidence:
    """What one piece of text says; ``None`` where it says nothing or contradicts itself."""

    laterality: Laterality | None = None
    view: ViewPosition | None = None


def _tokens(text: str) -> list[str]:
    return [token for token in re.split(r"[^A-Z0-9]+", text.upper()) if token]


_T = TypeVar("_T")


def _single(values: set[_T]) -> _T | None:
    return next(iter(values)) if len(values) == 1 else None


def parse_text(text: str | None) -> TextEvidence:
    """Laterality and view named in ``text`` (a file name, PatientID, SeriesDescription...).

    >>> parse_text("Mass-Test_P_00173_LEFT_CC")
    TextEvidence(laterality=<Laterality.L: 'L'>, view=<ViewPosition.CC: 'CC'>)
    """
    if not text:
        return TextEvidence()
    tokens = _tokens(text)
    sides: set[Laterality] = set()
    views: set[ViewPosition] = set()
    for i, token in enumerate(tokens):
        neighbours = tokens[max(i - 1, 0) : i] + tokens[i + 1 : i + 2]
        side_letters = {_SIDE_LETTERS[w] for w in neighbours if w in _SIDE_LETTERS}
        side_words = {_SIDE_WORDS[w] for w in neighbours if w in _SIDE_WORDS}
        if token in _SIDE_WORDS:
            sides.add(_SIDE_WORDS[token])
        elif token in _VIEW_TOKENS and (token not in _WEAK_VIEWS or side_letters | side_words):
            views.add(_VIEW_TOKENS[token])
            sides |= side_letters
        elif token in _PHRASE_WORDS:
            sides |= side_letters
        elif match := _COMBINED.match(token):
            sides.add(_SIDE_LETTERS[match.group(1)])
            views.add(_VIEW_TOKENS[match.group(2)])
    joined = " ".join(tokens)
    for pattern, view in _PHRASES:
        if pattern.search(joined):
            views.add(view)
            break
    return TextEvidence(laterality=_single(sides), view=_single(views))


def exact_view(text: str | None) -> ViewPosition | None:
    """A view when ``text`` is exactly one view code ("CC", "mlo", "AT"), else ``None``.

    Used for coded-string fields such as View Position and the CBIS-DDSM habit of writing the
    view into Patient Orientation.
    """
    if not text:
        return None
    value = text.strip().upper()
    if value == ViewPosition.OTHER.value:
        return None
    try:
        return ViewPosition(value)
    except ValueError:
        return None


def patient_key(patient_id: str | None) -> str | None:
    """The patient part of an ID, for grouping images by patient.

    CBIS-DDSM gives every image its own study and writes side and view into the PatientID
    (``Mass-Test_P_00173_LEFT_CC``); this returns ``P_00173`` for all four views (and for the
    calcification and mass records of the same patient). Any other ID is returned stripped.
    """
    if patient_id is None or not patient_id.strip():
        return None
    value = patient_id.strip()
    match = _CBIS_ID.match(value)
    return match.group(1).upper() if match else value
