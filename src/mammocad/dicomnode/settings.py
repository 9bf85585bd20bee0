"""Settings of the DICOM node: its own AE title and port, who may call it, where results go.

AE titles follow the AE value representation (PS3.5 Table 6.2-1): at most 16 characters of the
default character repertoire, no backslash, no control characters, leading/trailing spaces not
significant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII without "\"
_DESTINATION = re.compile(r"^(?P<aet>[^@]+)@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d+)$")


def ae_title(text: str) -> str:
    """``text`` as an AE title (stripped); ``ValueError`` saying why when it is not one."""
    title = text.strip()
    if not _AE_TITLE.fullmatch(title):
        raise ValueError(
            f"{text!r} is not a DICOM AE title: use 1 to 16 printable ASCII characters, "
            "no backslash (PS3.5 Table 6.2-1)"
        )
    return title


def _port(value: int, what: str) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"{what} {value} is not a TCP port (0–65535)")
    return value


class SendSyntax(str, Enum):
    """Transfer syntaxes the node can convert its outputs to before sending (PS3.5 Section 10).

    All three are uncompressed encodings of the same data set, so converting between them is
    lossless; compressed syntaxes are not offered because the node does not re-compress.
    """

    explicit = "explicit"
    implicit = "implicit"
    deflated = "deflated"

    @property
    def uid(self) -> UID:
        return {
            SendSyntax.explicit: ExplicitVRLittleEndian,
            SendSyntax.implicit: ImplicitVRLittleEndian,
            SendSyntax.deflated: DeflatedExplicitVRLittleEndian,
        }[self]


#: what the node offers by default: Explicit VR Little Endian first (it keeps the VRs), then the
#: DICOM default Implicit VR Little Endian, which every Storage SCP must accept (PS3.5 10.1)
DEFAULT_SEND_SYNTAXES = (SendSyntax.explicit, SendSyntax.implicit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """A remote Storage SCP the results are sent to (C-STORE SCU, PS3.4 Annex B)."""

    ae_title: str
    host: str
    port: int
    #: offered in this order for every SOP class; the destination accepts one per context
    transfer_syntaxes: tuple[SendSyntax, ...] = DEFAULT_SEND_SYNTAXES

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", ae_title(self.ae_title))
        _port(self.port, "destination port")
        if not self.transfer_syntaxes:
            raise ValueError("offer at least one transfer syntax to the destination")

    @classmethod
    def parse(
        cls, text: str, *, transfer_syntaxes: tuple[SendSyntax, ...] = DEFAULT_SEND_SYNTAXES
    ) -> Destination:
        """``AET@host:port`` (IPv6 hosts in brackets: ``PACS@[::1]:4242``)."""
        match = _DESTINATION.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"{text!r}: give the destination as AET@host:port, e.g. ORTHANC@pacs:4242"
            )
        host = match["host"].strip("[]")
        return cls(
            ae_title=match["aet"],
            host=host,
            port=int(match["port"]),
            transfer_syntaxes=transfer_syntaxes,
        )

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    """Everything :class:`~mammocad.dicomnode.node.DicomNode` needs; built once by the caller.

    Attributes:
        ae_title: the node's own AE title; associations called with another title are rejected
            (A-ASSOCIATE-RJ reason "called-AE-title-not-recognized", PS3.8 Table 9-21).
        port: TCP port of the C-ECHO / C-STORE SCP (0: any free port, for tests).
        bind_address: address to listen on ("" = all interfaces).
        allowed_calling_aets: calling AE titles accepted; empty = everyone.
        destination: where results are sent; ``None`` keeps them in the spool only.
        spool_dir: received instances and results, one folder per study (see collector).
        idle_timeout_s: a study is closed this long after its last instance arrived.
        keep_studies: keep each study's folder after its results were sent.
        network_timeout_s: ACSE, DIMSE and network timeouts of both roles.
    """

    ae_title: str = "MAMMOCAD"
    port: int = 11112
    bind_address: str = ""
    allowed_calling_aets: frozenset[str] = field(default_factory=frozenset)
    destination: Destination | None = None
    spool_dir: Path = Path("spool")
    idle_timeout_s: float = 10.0
    keep_studies: bool = False
    network_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", ae_title(self.ae_title))
        allowed = frozenset(ae_title(title) for title in self.allowed_calling_aets)
        object.__setattr__(self, "allowed_calling_aets", allowed)
        _port(self.port, "port")
        if self.idle_timeout_s <= 0:
            raise ValueError(f"idle timeout must be positive, not {self.idle_timeout_s}")
        if self.network_timeout_s <= 0:
            raise ValueError(f"network timeout must be positive, not {self.network_timeout_s}")
