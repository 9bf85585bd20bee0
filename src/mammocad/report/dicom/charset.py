"""Specific Character Set of the SRs mammocad writes (PS3.5 6.1.2, PS3.3 C.12.1.1.2).

An SR starts with its source's character set (highdicom copies it, so patient names keep their
encoding); mammocad's own text (a rejection sentence with an em dash, a model name) may need
more, and pydicom writes what the declared set cannot hold as "?" with only a warning.
:func:`declare_character_set` switches such an SR to UTF-8 instead when that keeps the bytes of
every copied value, and spells its own text within the declared set otherwise.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

#: The value representations Specific Character Set applies to (PS3.5 6.1.2).
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})
#: The terms of the default repertoire (ISO-IR 6, i.e. ASCII; PS3.5 6.1.2): pydicom encodes it
#: as Latin-1, which would accept characters the repertoire does not have.
_DEFAULT_REPERTOIRE = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6"})
UTF_8 = "ISO_IR 192"


def _python_codecs(dataset: Dataset) -> list[str | None]:
    """The Python codecs of ``dataset``'s Specific Character Set, one per term; ``None`` for a
    term pydicom does not know."""
    value = dataset.get("SpecificCharacterSet")
    terms = [str(v) for v in value] if isinstance(value, MultiValue) else [str(value or "")]
    return ["ascii" if t in _DEFAULT_REPERTOIRE else python_encoding.get(t) for t in terms]


def _encodes(text: str, codec: str | None) -> bool:
    if codec is None:
        return False
    try:
        text.encode(codec)
    except (UnicodeError, LookupError):
        return False
    return True


def _fits(text: str, codecs: Sequence[str | None]) -> bool:
    """Whether ``text`` can be written in the character set of ``codecs``: by one of them, or,
    with code extensions (several terms, PS3.5 6.1.2), each character by one of them."""
    if any(_encodes(text, codec) for codec in codecs):
        return True
    return len(codecs) > 1 and all(any(_encodes(c, codec) for codec in codecs) for c in text)


#: Where the SR holds text mammocad wrote; every other text value was copied from the source
#: (patient and study modules), in the bytes and character set the source had.
_OWN_SEQUENCES = ("ContentSequence", "AuthorObserverSequence")
_OWN_KEYWORDS = frozenset(
    {"SeriesDescription", "Manufacturer", "ManufacturerModelName", "SoftwareVersions"}
)
#: Typographic characters of mammocad's sentences and their plain spelling.
_PLAIN = str.maketrans(
    {"\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
     "\u2026": "...", "\u00d7": "x", "\u2265": ">=", "\u2264": "<=", "\u2192": "->"}
)  # fmt: skip


def _text_elements(dataset: Dataset) -> list[DataElement]:
    """Every element, nested sequences included, whose value Specific Character Set governs."""
    return [
        element
        for element in dataset.iterall()
        if element.VR in _TEXT_VRS and element.value is not None
    ]


def _values(element: DataElement) -> list[str]:
    values = element.value if isinstance(element.value, MultiValue | list) else [element.value]
    return [str(v) for v in values if isinstance(v, str | PersonName)]


def _own_and_copied(dataset: Dataset) -> tuple[list[DataElement], list[DataElement]]:
    own = [
        element
        for keyword in _OWN_SEQUENCES
        for item in dataset.get(keyword) or []
        for element in _text_elements(item)
    ]
    own += [dataset[k] for k in _OWN_KEYWORDS if k in dataset and dataset[k].value is not None]
    own_ids = {id(element) for element in own}
    copied = [e for e in _text_elements(dataset) if id(e) not in own_ids]
    return own, copied


def _folded(text: str, codecs: Sequence[str | None]) -> str:
    """``text`` with every character the character set lacks spelt plainly (an em dash as
    ``-``, ``é`` as ``e``), else as ``?``."""
    out = []
    for char in text.translate(_PLAIN):
        if _fits(char, codecs):
            out.append(char)
        else:
            plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
            out.append(plain or "?")
    return "".join(out)


def declare_character_set(dataset: Dataset) -> None:
    """Make the text mammocad wrote into ``dataset`` fit its Specific Character Set, so that
    pydicom never replaces a character with "?" and nothing copied from the source changes.

    The SR starts with the source's character set (highdicom copies it, so patient names keep
    their encoding); its own text (a rejection sentence with an em dash, a file name with an
    accent, a model name) may need more: without Specific Character Set only the default
    repertoire, ASCII, is allowed (PS3.5 6.1.2). When the copied values are all ASCII, the SR
    switches to UTF-8 (``ISO_IR 192``, a Defined Term of PS3.3 C.12.1.1.2), which holds every
    value and writes them with the same bytes. Otherwise re-encoding would change their bytes —
    a Patient ID or name in Latin-1 or ISO 2022, UTF-8 bytes under no declaration (a common
    defect, read as Latin-1) — and a PACS matches the SR to its patient by those bytes, so the
    declaration stays and mammocad's own text is spelt within it instead (:func:`_folded`:
    what has no plain spelling, e.g. CJK, becomes "?").
    """
    codecs = _python_codecs(dataset)
    own, copied = _own_and_copied(dataset)
    if all(_fits(text, codecs) for element in own for text in _values(element)):
        return
    if all(text.isascii() for element in copied for text in _values(element)):
        dataset.SpecificCharacterSet = UTF_8
        return
    for element in own:
        if isinstance(element.value, str | PersonName):
            element.value = _folded(str(element.value), codecs)
        elif isinstance(element.value, MultiValue | list):
            element.value = [
                _folded(str(v), codecs) if isinstance(v, str | PersonName) else v
                for v in element.value
            ]
