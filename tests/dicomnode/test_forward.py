"""C-STORE SCU to the destination: negotiation, conversion, and failures reported per file."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydicom import dcmread
from pydicom.uid import (
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)

from mammocad.dicomnode import Destination, SendSyntax
from mammocad.dicomnode.forward import send_files

if TYPE_CHECKING:
    from conftest import Destination as Recorder

DestinationFactory = Callable[..., "Recorder"]
BOTH = (SendSyntax.explicit, SendSyntax.implicit)


def explicit_copies(phantom: list[Path], folder: Path) -> list[Path]:
    """The phantom images decompressed to Explicit VR Little Endian files."""
    folder.mkdir()
    paths = []
    for source in phantom:
        ds = dcmread(source)
        ds.decompress()
        paths.append(folder / source.name)
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def to(recorder: Recorder, syntaxes: tuple[SendSyntax, ...] = BOTH) -> Destination:
    return Destination.parse(recorder.address, transfer_syntaxes=syntaxes)


def test_converts_to_the_only_syntax_the_destination_accepts(
    destination_factory: DestinationFactory, phantom: list[Path], tmp_path: Path
) -> None:
    recorder = destination_factory(syntaxes=[ImplicitVRLittleEndian])
    files = explicit_copies(phantom[:2], tmp_path / "explicit")
    report = send_files(files, destination=to(recorder), calling_ae_title="MAMMOCAD")
    assert report.failures == [], report.summary()
    assert [sent.transfer_syntax for sent in report.objects] == [ImplicitVRLittleEndian] * 2
    assert [sent.converted_from for sent in report.objects] == [ExplicitVRLittleEndian] * 2
    assert {item.transfer_syntax for item in recorder.received} == {ImplicitVRLittleEndian}
    assert {item.calling_aet for item in recorder.received} == {"MAMMOCAD"}
    for path, item in zip(files, recorder.received, strict=True):
        assert item.dataset.PixelData == dcmread(path).PixelData


def test_compressed_file_is_decompressed_losslessly(
    destination_factory: DestinationFactory, phantom: list[Path]
) -> None:
    source = dcmread(phantom[0])
    assert source.file_meta.TransferSyntaxUID.is_compressed
    recorder = destination_factory(syntaxes=[ExplicitVRLittleEndian])
    report = send_files(phantom[:1], destination=to(recorder), calling_ae_title="MAMMOCAD")
    assert report.failures == [], report.summary()
    assert report.objects[0].converted_from == source.file_meta.TransferSyntaxUID
    (item,) = recorder.received
    assert item.transfer_syntax == ExplicitVRLittleEndian
    np.testing.assert_array_equal(item.dataset.pixel_array, source.pixel_array)


def test_destination_accepting_nothing_offered_is_reported(
    destination_factory: DestinationFactory, phantom: list[Path], tmp_path: Path
) -> None:
    recorder = destination_factory(syntaxes=[ImplicitVRLittleEndian])
    files = explicit_copies(phantom[:1], tmp_path / "explicit")
    destination = to(recorder, (SendSyntax.explicit,))
    report = send_files(files, destination=destination, calling_ae_title="MAMMOCAD")
    (failed,) = report.failures
    assert failed.status is None
    assert "accepted none of the proposed presentation contexts" in str(failed.error)
    assert recorder.received == []


def test_one_refused_sop_class_does_not_stop_the_others(
    destination_factory: DestinationFactory, phantom: list[Path], tmp_path: Path
) -> None:
    recorder = destination_factory(
        syntaxes=[ExplicitVRLittleEndian], sop_classes=[SecondaryCaptureImageStorage]
    )
    files = explicit_copies(phantom[:2], tmp_path / "explicit")
    sc = dcmread(files[1])
    sc.SOPClassUID = sc.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    sc.save_as(files[1], enforce_file_format=True)
    report = send_files(files, destination=to(recorder), calling_ae_title="MAMMOCAD")
    (failed,) = report.failures
    assert failed.sop_class_uid == DigitalMammographyXRayImageStorageForPresentation
    assert "accepted no offered transfer syntax" in str(failed.error)
    assert [item.dataset.SOPInstanceUID for item in recorder.received] == [sc.SOPInstanceUID]


def test_failure_status_and_unreadable_file_are_reported(
    destination_factory: DestinationFactory, phantom: list[Path], tmp_path: Path
) -> None:
    recorder = destination_factory(syntaxes=[ExplicitVRLittleEndian], status=0xA700)
    files = explicit_copies(phantom[:1], tmp_path / "explicit")
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"not DICOM at all")
    report = send_files([garbage, *files], destination=to(recorder), calling_ae_title="MAMMOCAD")
    unreadable, refused = report.objects
    assert unreadable.status is None and "unreadable" in str(unreadable.error)
    assert refused.status == 0xA700 and "out of resources" in str(refused.error)
    assert "0/2 sent" in report.summary()


def test_unreachable_destination_is_reported(phantom: list[Path], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    files = explicit_copies(phantom[:1], tmp_path / "explicit")
    destination = Destination(ae_title="NOBODY", host="127.0.0.1", port=port)
    report = send_files(files, destination=destination, calling_ae_title="MAMMOCAD", timeout_s=5)
    (failed,) = report.failures
    assert "no association with NOBODY@127.0.0.1" in str(failed.error)


def test_rejected_association_says_why(
    destination_factory: DestinationFactory, phantom: list[Path], tmp_path: Path
) -> None:
    recorder = destination_factory(syntaxes=[ExplicitVRLittleEndian], callers=["SOMEONE"])
    files = explicit_copies(phantom[:1], tmp_path / "explicit")
    report = send_files(files, destination=to(recorder), calling_ae_title="MAMMOCAD")
    (failed,) = report.failures
    # PS3.8 Table 9-21: result 1, source 1, reason 3
    assert "association rejected by RESULTS@127.0.0.1" in str(failed.error)
    assert "result Rejected Permanent, source Service User" in str(failed.error)
    assert "Calling AE title not recognised" in str(failed.error)
