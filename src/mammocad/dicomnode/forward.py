"""Send result objects to the destination by C-STORE (Storage Service Class, SCU role).

Negotiation (PS3.8 Sections 9.3.2.2 and 9.3.3.2, the presentation context items of the
A-ASSOCIATE-RQ and -AC PDUs): one presentation context per SOP class among the files, each
offering the transfer syntaxes configured for the destination
(:class:`~mammocad.dicomnode.settings.SendSyntax`, uncompressed only). The
destination accepts at most one transfer syntax per context (or rejects the context); each data
set is then sent in the syntax accepted for its SOP class:

* as stored when that is the accepted syntax;
* otherwise re-encoded, which is lossless between the uncompressed syntaxes (Explicit VR ↔
  Implicit VR Little Endian, deflated ↔ inflated; pynetdicom does the encoding);
* a compressed data set is decompressed first (pydicom's decoders), since nothing compressed is
  offered.

Nothing here raises for a network or peer failure: each file gets a :class:`SentObject` with the
C-STORE status (PS3.4 B.2.3) or the reason it was not sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, build_context
from pynetdicom.association import Association

from mammocad.dicomnode.settings import Destination

logger = logging.getLogger(__name__)

#: PS3.8 Section 9.3.2: a requestor may propose at most 128 presentation contexts (odd IDs 1–255)
MAX_CONTEXTS = 128
#: C-STORE statuses that mean stored (PS3.4 Table B.2-1): Success and the three Warnings
STORED = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


@dataclass(frozen=True, slots=True, kw_only=True)
class SentObject:
    """What happened to one file: ``status`` is the C-STORE response status, ``None`` when it
    was not sent (then ``error`` says why)."""

    path: Path
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    transfer_syntax: str | None = None  # the syntax it went over the wire in
    converted_from: str | None = None  # the stored syntax, when it had to be re-encoded
    status: int | None = None
    error: str | None = None

    @property
    def stored(self) -> bool:
        return self.status in STORED


@dataclass(slots=True)
class ForwardReport:
    """The outcome of one :func:`send_files` call, file by file."""

    destination: str
    objects: list[SentObject] = field(default_factory=list)

    @property
    def failures(self) -> list[SentObject]:
        return [sent for sent in self.objects if not sent.stored]

    def summary(self) -> str:
        sent = len(self.objects) - len(self.failures)
        text = f"{sent}/{len(self.objects)} sent to {self.destination}"
        reasons = sorted({f"{sent.path.name}: {sent.error}" for sent in self.failures})
        return text if not reasons else f"{text}; failed: {'; '.join(reasons)}"


def _read(path: Path) -> Dataset | str:
    """The data set of ``path``, or why it cannot be sent."""
    try:
        ds = dcmread(path)
    except Exception as error:  # anything pydicom raises on a damaged file
        return f"unreadable ({type(error).__name__}: {error})"
    missing = [kw for kw in ("SOPClassUID", "SOPInstanceUID") if kw not in ds]
    if "TransferSyntaxUID" not in ds.file_meta:
        missing.append("TransferSyntaxUID (file meta)")
    return f"not sendable, no {', '.join(missing)}" if missing else ds


def _contexts(datasets: Sequence[Dataset]) -> list[UID]:
    """The SOP classes to propose, in first-seen order (one context each)."""
    classes = list(dict.fromkeys(UID(ds.SOPClassUID) for ds in datasets))
    if len(classes) > MAX_CONTEXTS:
        raise ValueError(f"{len(classes)} SOP classes exceed one association's {MAX_CONTEXTS}")
    return classes


def _accepted_syntaxes(assoc: Association) -> dict[str, UID]:
    return {str(cx.abstract_syntax): cx.transfer_syntax[0] for cx in assoc.accepted_contexts}


def _send_one(assoc: Association, path: Path, ds: Dataset, accepted: dict[str, UID]) -> SentObject:
    sop_class, stored_as = UID(ds.SOPClassUID), UID(ds.file_meta.TransferSyntaxUID)
    base = SentObject(path=path, sop_class_uid=sop_class, sop_instance_uid=ds.SOPInstanceUID)
    syntax = accepted.get(sop_class)
    if syntax is None:
        error = f"the destination accepted no offered transfer syntax for {sop_class.name}"
        return replace(base, error=error)
    try:
        if stored_as.is_compressed:
            ds.decompress()  # to Explicit VR Little Endian; pynetdicom re-encodes from there
        status = assoc.send_c_store(ds)
    except Exception as error:  # decode or encode failure of this object only
        return replace(base, error=f"{type(error).__name__}: {error}")
    code = int(status.Status) if "Status" in status else None
    return replace(
        base,
        transfer_syntax=syntax,
        converted_from=None if stored_as == syntax else stored_as,
        status=code,
        error=None if code in STORED else _status_text(code),
    )


def _status_text(code: int | None) -> str:
    if code is None:
        return "no C-STORE response (timeout or connection lost)"
    kind = {0xA7: "out of resources", 0xA9: "data set does not match SOP class"}.get(
        code >> 8, "cannot understand" if 0xC000 <= code <= 0xCFFF else "failure"
    )
    return f"C-STORE status 0x{code:04X} ({kind}, PS3.4 Table B.2-1)"


def send_files(
    paths: Sequence[Path],
    *,
    destination: Destination,
    calling_ae_title: str,
    timeout_s: float = 30.0,
) -> ForwardReport:
    """C-STORE every file of ``paths`` to ``destination`` over one association."""
    report = ForwardReport(destination=str(destination))
    datasets: list[tuple[Path, Dataset]] = []
    for path in paths:
        read = _read(path)
        if isinstance(read, str):
            report.objects.append(SentObject(path=path, error=read))
        else:
            datasets.append((path, read))
    if not datasets:
        return report
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    syntaxes: list[str | UID] = [syntax.uid for syntax in destination.transfer_syntaxes]
    for sop_class in _contexts([ds for _, ds in datasets]):
        ae.requested_contexts.append(build_context(sop_class, syntaxes))
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not assoc.is_established:
        reason = _association_failure(assoc, destination)
        report.objects.extend(replace(_bare(p, ds), error=reason) for p, ds in datasets)
        return report
    try:
        accepted = _accepted_syntaxes(assoc)
        for path, ds in datasets:
            if not assoc.is_established:  # aborted by the peer midway
                report.objects.append(replace(_bare(path, ds), error="association aborted"))
                continue
            report.objects.append(_send_one(assoc, path, ds, accepted))
    finally:
        if assoc.is_established:
            assoc.release()
    return report


def _bare(path: Path, ds: Dataset) -> SentObject:
    return SentObject(path=path, sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID)


def _association_failure(assoc: Association, destination: Destination) -> str:
    """Why no association came up, in the terms of PS3.8 Table 9-21 where there is a reply."""
    if assoc.is_rejected and assoc.acceptor.primitive is not None:
        rsp = assoc.acceptor.primitive
        return (
            f"association rejected by {destination} (result {rsp.result_str}, source "
            f"{rsp.source_str}, reason {rsp.reason_str}; PS3.8 Table 9-21)"
        )
    if assoc.is_aborted and assoc.acceptor.primitive is not None:
        # A-ASSOCIATE-AC with every context refused: pynetdicom aborts (nothing to send on)
        offered = ", ".join(syntax.value for syntax in destination.transfer_syntaxes)
        return (
            f"{destination} accepted none of the proposed presentation contexts (offered "
            f"transfer syntaxes: {offered}); check which SOP classes and syntaxes it accepts"
        )
    if assoc.acceptor.primitive is None:  # no A-ASSOCIATE answer at all
        return (
            f"no association with {destination}: connection refused, timed out or aborted "
            "before an answer (is it running, and is the address right?)"
        )
    return f"association aborted by {destination}"
