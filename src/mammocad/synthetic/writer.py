"""Write phantom studies to disk: ``<out>/<study>/IM000n.dcm`` plus ``truth.json``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from mammocad.errors import SynthesisError
from mammocad.synthetic._random import child_seed, stream
from mammocad.synthetic.dicom import build_dataset
from mammocad.synthetic.study import PhantomStudy, generate_study
from mammocad.synthetic.truth import StudyTruth, write_truth
from mammocad.synthetic.voi import choose_voi, to_stored

TRUTH_FILE = "truth.json"


def _encode(ds: Dataset, transfer_syntax: str) -> None:
    """Compress in place with pydicom's encoders (RLE: pydicom/pylibjpeg-rle, JPEG-LS:
    pyjpegls, JPEG 2000: pylibjpeg-openjpeg); Explicit VR Little Endian stays native."""
    if transfer_syntax == ExplicitVRLittleEndian:
        return
    ds.compress(UID(transfer_syntax), ds.pixel_array, generate_instance_uid=False)


def study_folder_name(index: int, truth: StudyTruth) -> str:
    return f"{index:04d}_{truth.patient.patient_id}"


def write_study(study: PhantomStudy, folder: Path) -> Path:
    """Write the four views of ``study`` and its ``truth.json`` into ``folder``.

    Files are named ``IM0001.dcm``… in a shuffled order (readers must use the tags, not the
    file order); the truth records each file name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    truth = study.truth
    order = stream(truth.seed, "file-order").permutation(len(study.views))
    views = list(truth.views)
    for number, index in enumerate(order, start=1):
        view = study.views[index]
        name = f"IM{number:04d}.dcm"
        voi = choose_voi(
            truth.variant.voi,
            truth.variant.bits_stored,
            stream(truth.seed, "voi", view.truth.sop_instance_uid),
        )
        stored = to_stored(view.pixels, voi, truth.variant.photometric)
        ds = build_dataset(
            truth=truth, view=view.truth, stored=stored, voi=voi, instance_number=number
        )
        _encode(ds, truth.variant.transfer_syntax_uid)
        ds.save_as(folder / name, enforce_file_format=True)
        views[index] = replace(view.truth, file_name=name)
    write_truth(replace(truth, views=tuple(views)), folder / TRUTH_FILE)
    return folder


def write_studies(
    *,
    n_studies: int,
    out_dir: Path,
    seed: int,
    size: str = "small",
    malignant_rate: float = 0.3,
    benign_rate: float = 0.4,
    defect_rate: float = 0.0,
    one_view_rate: float = 0.0,
    on_study: Callable[[int, Path], None] | None = None,
) -> list[Path]:
    """Generate and write ``n_studies`` studies; return their folders, in order.

    Study ``i`` uses its own seed drawn from (``seed``, ``i``), recorded in its truth, so
    ``generate_study(seed=truth.seed, ...)`` re-creates it alone. ``on_study(i, folder)`` is
    called after each study (for progress bars).
    """
    if n_studies < 0:
        raise SynthesisError(f"n_studies must be 0 or more, got {n_studies}")
    if seed < 0:
        raise SynthesisError(f"seed must be non-negative, got {seed}")
    folders = []
    for index in range(n_studies):
        study_seed = child_seed(stream(seed, "study-seed", index))
        study = generate_study(
            seed=study_seed,
            size=size,
            malignant_rate=malignant_rate,
            benign_rate=benign_rate,
            defect_rate=defect_rate,
            one_view_rate=one_view_rate,
        )
        folder = write_study(study, Path(out_dir) / study_folder_name(index, study.truth))
        folders.append(folder)
        if on_study is not None:
            on_study(index, folder)
    return folders
