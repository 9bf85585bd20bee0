"""``mammocad preprocess``: every input image → tissue mask, model input and image JSON.

Per image, keyed by SOPInstanceUID (or the file name stem when there is none):

* ``<key>.json`` — the result schema's ``image`` object with empty findings; its ``quality``
  holds the technical checks preprocessing can make (tissue found, exposure range);
* ``<key>.mask.png`` — tissue mask (breast + pectoral muscle) on the ORIGINAL grid, 0/255;
* ``<key>.input.png`` — the two-channel model input side by side, chest wall on the left.

Files that are not images at all (not DICOM, unreadable) have no size, so they cannot be schema
``image`` objects: they get ``<key>.json`` with their status, code and sentence only. Every input
is listed in ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from mammocad.commands.progress import batch_progress
from mammocad.errors import PreprocessError
from mammocad.io import iter_studies
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.report.pictures import input_picture, to_uint8, write_png
from mammocad.report.result_json import has_known_size, image_to_dict
from mammocad.structures import Image, PreprocessedImage


@dataclass(slots=True)
class PreprocessSummary:
    """One line per input file: key, source, status, rejection code and sentence."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return sum(entry["status"] == "processed" for entry in self.entries)

    @property
    def rejected(self) -> int:
        return len(self.entries) - self.processed


def _unique_key(image: Image, taken: set[str]) -> str:
    key = base = image.key.replace("/", "_")
    suffix = 2
    while key in taken:
        key, suffix = f"{base}-{suffix}", suffix + 1
    taken.add(key)
    return key


def _prepare(image: Image, params: PreprocessParams) -> PreprocessedImage | None:
    if not image.is_processed:
        return None
    try:
        prepared = preprocess_image(image, params)
    except PreprocessError as error:
        image.reject(error.code, error.message)
        return None
    image.messages.extend(prepared.messages)
    return prepared


def _write_image(image: Image, prepared: PreprocessedImage | None, out: Path, key: str) -> None:
    if has_known_size(image):
        document = image_to_dict(image, preprocessed=prepared)
    else:
        document = {
            "source": image.source,
            "status": image.status.value,
            "rejection_code": image.rejection_code.value if image.rejection_code else None,
            "messages": [message.to_dict() for message in image.messages],
        }
    (out / f"{key}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if prepared is not None:
        write_png(out / f"{key}.mask.png", to_uint8(prepared.tissue_mask))
        write_png(out / f"{key}.input.png", input_picture(prepared.input))


def _summary_entry(image: Image, key: str) -> dict[str, Any]:
    return {
        "key": key,
        "source": image.source,
        "study_instance_uid": image.study_instance_uid,
        "status": image.status.value,
        "rejection_code": image.rejection_code.value if image.rejection_code else None,
        "text": image.rejection_text,
    }


def run_preprocess(
    inputs: Sequence[Path],
    *,
    out_dir: Path,
    params: PreprocessParams | None = None,
    console: Console | None = None,
) -> PreprocessSummary:
    """Preprocess every image of ``inputs`` (files, folders, zips) into ``out_dir``."""
    params = params or PreprocessParams()
    out_dir.mkdir(parents=True, exist_ok=True)
    stream = iter_studies(list(inputs))
    summary, taken = PreprocessSummary(), set[str]()

    def handle(image: Image) -> None:
        key = _unique_key(image, taken)
        prepared = _prepare(image, params)
        _write_image(image, prepared, out_dir, key)
        summary.entries.append(_summary_entry(image, key))

    with batch_progress(console) as progress:
        task = progress.add_task("preprocess", total=len(stream) + len(stream.unassigned))
        for study in stream:
            for image in study.images:
                handle(image)
                image.pixels = None  # a batch must not hold every decoded image at once
            progress.advance(task)
        for image in stream.unassigned:
            handle(image)
            progress.advance(task)
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary.entries, indent=2) + "\n", encoding="utf-8")
    return summary
