"""Specific Character Set of the SRs mammocad writes (PS3.5 6.1.2, PS3.3 C.12.1.1.2).

An SR starts with its source's character set (highdicom copies it, so patient names keep their
encoding); mammocad's own text (a rejection sentence with an em dash, a model name) may need
more, and pydicom writes what the declared set cannot hold as "?" with only a warning.
:func:`declare_character_set` switches such an SR to UTF-8 instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.charset import python_encoding
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


def _texts(dataset: Dataset) -> list[str]:
    """Every value, nested sequences included, that Specific Character Set applies to."""
    texts: list[str] = []
    for element in dataset.iterall():
        if element.VR not in _TEXT_VRS or element.value is None:
            continue
        values = element.value if isinstance(element.value, MultiValue | list) else [element.value]
        texts.extend(str(v) for v in values if isinstance(v, str | PersonName))
    return texts


def declare_character_set(dataset: Dataset) -> None:
    """Switch ``dataset`` to UTF-8 (``ISO_IR 192``) when a text value is outside its Specific
    Character Set, so that nothing is written as "?".

    The SR starts with the source's character set (highdicom copies it, so patient names keep
    their encoding); its own text (a rejection sentence with an em dash, a model name) may need
    more: without Specific Character Set only the default repertoire, ASCII, is allowed (PS3.5
    6.1.2). UTF-8 (``ISO_IR 192``, a Defined Term of PS3.3 C.12.1.1.2) holds every value, and
    pydicom re-encodes the copied names in it (a PersonName is encoded anew for a character set
    other than the one it was read with).
    """
    codecs = _python_codecs(dataset)
    if not all(_fits(text, codecs) for text in _texts(dataset)):
        dataset.SpecificCharacterSet = UTF_8
