"""Where input files come from: paths, folders (recursive, linked folders followed) and zip
archives; what each file is.

A :class:`Source` is one file on disk or one member of a zip archive (read in memory, named
``archive.zip!member/path``; where an archive holds several members of one name, which zip
allows, the second is ``archive.zip!member/path#2`` and so on, and each is read).
:func:`collect_sources` expands the caller's inputs in a stable, sorted order; it skips hidden
files and folders (names starting with ``.``, ``__MACOSX``, ``Thumbs.db``, ``desktop.ini``) and
attaches each sidecar ``<image file>.json`` to its image (also beside an image named alone as
an input); a file that several inputs name is one Source.
Inside a folder or archive it also passes over companion documents that are never images
(:data:`COMPANION_SUFFIXES`: ``truth.json``, ``README.txt``, annotation CSVs…), since datasets
and phantom folders carry them beside every study; a companion named explicitly as an input is
still read and rejected. Every other file becomes a Source, so that it is reported (processed
or rejected), never lost.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mammocad.errors import RejectionCode
from mammocad.structures import Image

_JUNK_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
_PNG = b"\x89PNG\r\n\x1a\n"
_NETPBM = (b"P2", b"P3", b"P5", b"P6")
_TIFF = (b"II*\x00", b"MM\x00*")
_JPEG = b"\xff\xd8\xff"
_ZIP = b"PK\x03\x04"
_RAW_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
}  # fmt: skip
HEAD_SIZE = 132
#: what reading one zip member raises when the member, not the archive, is bad: a CRC
#: mismatch, a damaged deflate stream, data ending early, a password, an unknown method
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)


class ArchiveMemberError(OSError):
    """A zip member that cannot be read although its archive opens (an ``OSError``, so that
    readers reject the file as unreadable rather than crash the batch)."""


class FileKind(StrEnum):
    """What the first bytes of a file say it is."""

    DICOM = "dicom"  # 128-byte preamble + "DICM" (PS3.10 7.1)
    DICOM_RAW = "dicom_raw"  # a bare data set (no preamble), as some old archives hold
    RASTER = "raster"  # PNG, PGM/PPM, TIFF, JPEG
    ZIP = "zip"
    UNKNOWN = "unknown"


def _looks_like_raw_dataset(head: bytes) -> bool:
    """A little-endian data set starting in group 0002 or 0008 with a sane first element.

    pydicom's ``force=True`` parses almost any bytes into a garbage data set; this guard
    lets through only what starts like a real one.
    """
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    element = int.from_bytes(head[2:4], "little")
    if group not in (0x0002, 0x0008) or element > 0x00FF:
        return False
    if head[4:6] in _RAW_VRS:
        return True
    return int.from_bytes(head[4:8], "little") < 0x10000  # implicit VR: a short length


def sniff(head: bytes) -> FileKind:
    """Classify a file by its first :data:`HEAD_SIZE` bytes."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return FileKind.DICOM
    if head.startswith(_PNG) or head.startswith(_TIFF) or head.startswith(_JPEG):
        return FileKind.RASTER
    if head[:2] in _NETPBM and head[2:3] in (b" ", b"\n", b"\r", b"\t"):
        return FileKind.RASTER
    if head.startswith(_ZIP):
        return FileKind.ZIP
    if _looks_like_raw_dataset(head):
        return FileKind.DICOM_RAW
    return FileKind.UNKNOWN


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: ``path`` on disk, or ``member`` of the zip archive at ``path``.

    ``occurrence`` tells apart members of one name (the n-th in the archive's directory):
    ``ZipFile.open(name)`` always gives the last of them, so the others would never be read.
    """

    path: Path
    member: str | None = None
    sidecar: Source | None = None
    occurrence: int = 1

    @property
    def name(self) -> str:
        """``path`` or ``archive.zip!member/path`` (``…#2`` for the second member of that name)
        — what results show as the image source."""
        if not self.member:
            return str(self.path)
        suffix = f"#{self.occurrence}" if self.occurrence > 1 else ""
        return f"{self.path}!{self.member}{suffix}"

    @property
    def file_name(self) -> str:
        """The last path component (used as laterality/view evidence)."""
        return PurePosixPath(self.member).name if self.member else self.path.name

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """A binary stream over the file (zip members are decompressed as they are read)."""
        if self.member is None:
            with self.path.open("rb") as stream:
                yield stream
        else:
            with zipfile.ZipFile(self.path) as archive:
                info = self._member_info(archive)
                with self._member_errors():  # encrypted, unknown compression method
                    member = archive.open(info)
                with member as stream:
                    yield stream  # type: ignore[misc]

    def _member_info(self, archive: zipfile.ZipFile) -> zipfile.ZipInfo:
        """The ``occurrence``-th member called ``member``; KeyError (as ``ZipFile.getinfo``)
        when there is none."""
        same = [info for info in archive.infolist() if info.filename == self.member]
        if len(same) < self.occurrence:
            raise KeyError(f"There is no item named {self.member!r} in the archive")
        return same[self.occurrence - 1]

    @classmethod
    def archive_member(cls, path: Path, shown: str) -> Source:
        """The member of the archive ``path`` that :attr:`name` shows as ``shown`` (the part
        after ``!``): ``IM0001.dcm#2`` is the second member called ``IM0001.dcm``, unless a
        member is really called ``IM0001.dcm#2``."""
        base, mark, number = shown.rpartition("#")
        if mark and number.isdecimal() and int(number) > 1:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if shown not in names and names.count(base) >= int(number):
                return cls(path=path, member=base, occurrence=int(number))
        return cls(path=path, member=shown)

    @contextmanager
    def _member_errors(self) -> Iterator[None]:
        """Turn what a damaged, encrypted or oddly compressed member raises into
        :class:`ArchiveMemberError` with a sentence saying what to do."""
        try:
            yield
        except _MEMBER_ERRORS as exc:
            if self.member is None:
                raise
            raise ArchiveMemberError(
                f"{self.member} in the zip archive {self.path} cannot be extracted "
                f"({' '.join(str(exc).split())}): the archive is damaged or password-protected; "
                "copy it again, or zip it again without a password"
            ) from exc

    @property
    def size(self) -> int:
        """Bytes of the file (of the member, uncompressed, in a zip archive)."""
        if self.member is None:
            return self.path.stat().st_size
        with zipfile.ZipFile(self.path) as archive:
            return self._member_info(archive).file_size

    def read_bytes(self) -> bytes:
        """The whole file; :class:`ArchiveMemberError` for a zip member that cannot be read."""
        with self.open() as stream, self._member_errors():
            return stream.read()

    def head(self) -> bytes:
        with self.open() as stream, self._member_errors():
            return stream.read(HEAD_SIZE)


#: Documents that travel beside images in dataset folders and are never images themselves.
COMPANION_SUFFIXES = frozenset(
    {
        ".json",
        ".txt",
        ".md",
        ".csv",
        ".tsv",
        ".xml",
        ".html",
        ".pdf",
        ".xlsx",
        ".log",
        ".yaml",
        ".yml",
    }
)


def is_companion(name: str) -> bool:
    """A document found beside the images (skipped when walking folders and archives)."""
    return PurePosixPath(name).suffix.lower() in COMPANION_SUFFIXES


def is_junk(name: str) -> bool:
    """Hidden or operating-system files that are never inputs."""
    return name.startswith(".") or name.lower() in _JUNK_NAMES


def _folder_files(folder: Path) -> Iterator[Path]:
    """Files under ``folder``, linked folders included (a dataset assembled from symbolic
    links must not read as empty), each real folder once: a link to a folder above would
    loop forever."""
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not is_junk(d))
        for name in sorted(files):
            if not is_junk(name):
                yield Path(root) / name


def _sidecar_name(source: Source) -> str:
    """The name of the sidecar of ``source``: ``x.png.json`` for ``x.png``; in an archive,
    for the n-th member called ``x.png``, the n-th called ``x.png.json``."""
    if source.member is None:
        return f"{source.path}.json"
    return replace(source, member=f"{source.member}.json", sidecar=None).name


def _walked_inputs(found: list[Source]) -> list[Source]:
    """Companions are dropped, except sidecars (``x.png.json``), which their image consumes.

    Judged by the file name, not the source name, whose ``#2`` would hide the suffix."""
    sidecars = {_sidecar_name(source) for source in found}
    return [
        source for source in found if not is_companion(source.file_name) or source.name in sidecars
    ]


def _named_parts(member: str) -> list[str]:
    """The folder and file names of a member path: ``./`` and ``../`` segments, which some
    archivers write, name no hidden file."""
    return [part for part in member.split("/") if part not in ("", ".", "..")]


def _archive_sources(path: Path) -> list[Source]:
    with zipfile.ZipFile(path) as archive:
        names = [
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and not any(map(is_junk, _named_parts(info.filename)))
        ]
    # counted in directory order, as Source._member_info finds them again; a name shared by
    # several members (two studies' IM0001.dcm zipped together) gives one source each
    seen: Counter[str] = Counter()
    sources = []
    for name in names:
        seen[name] += 1
        sources.append(Source(path=path, member=name, occurrence=seen[name]))
    return sorted(sources, key=lambda source: (str(source.member), source.occurrence))


def _attach_sidecars(sources: list[Source]) -> list[Source]:
    """Give ``x.png`` its ``x.png.json``; a sidecar is consumed, not listed on its own."""
    by_name = {source.name: source for source in sources}
    consumed: set[str] = set()
    attached: list[Source] = []
    for source in sources:
        sidecar = by_name.get(_sidecar_name(source))
        if sidecar is not None:
            consumed.add(sidecar.name)
            source = replace(source, sidecar=sidecar)
        attached.append(source)
    return [source for source in attached if source.name not in consumed]


def _once(sources: list[Source]) -> list[Source]:
    """Each file once, however many inputs name it (a folder and a file in it): a second
    source of one file would be rejected as a ``duplicate_instance`` of itself."""
    seen: set[tuple[str, str | None, int]] = set()
    kept = []
    for source in sources:
        key = (os.path.realpath(source.path), source.member, source.occurrence)
        if key not in seen:
            seen.add(key)
            kept.append(source)
    return kept


def missing_input(path: Path, reason: str) -> Image:
    """A rejected image standing for an input that could not be opened at all."""
    image = Image(source=str(path))
    image.reject(
        RejectionCode.UNREADABLE,
        f"{path} could not be opened ({reason}): check that it exists, is readable and is "
        "complete (an archive may have been cut short).",
    )
    return image


def collect_sources(inputs: Iterable[str | os.PathLike[str]]) -> tuple[list[Source], list[Image]]:
    """Expand inputs into sources (sorted, sidecars attached) and rejections for bad inputs.

    A file whose first bytes say "zip" is opened as an archive (at the top level or in a
    folder); a zip inside a zip is not opened and ends up rejected as not DICOM.
    """
    sources: list[Source] = []
    rejected: list[Image] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = list(_folder_files(path))
        elif path.is_file():
            sidecar = Path(f"{path}.json")  # a file's sidecar, as its folder would give it
            files = [path, sidecar] if sidecar.is_file() else [path]
        else:
            rejected.append(missing_input(path, "no such file or folder"))
            continue
        found: list[Source] = []
        for file in files:
            try:
                with file.open("rb") as stream:
                    is_zip = stream.read(4) == _ZIP
                found.extend(_archive_sources(file) if is_zip else [Source(path=file)])
            except (OSError, zipfile.BadZipFile, ValueError) as exc:
                rejected.append(missing_input(file, " ".join(str(exc).split())))
        walked = path.is_dir() or len(found) != 1 or found[0].member is not None
        if walked:
            found = _walked_inputs(found)
        sources.extend(found)
    return _attach_sidecars(_once(sources)), rejected
