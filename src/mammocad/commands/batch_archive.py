"""The ``mammocad batch`` archive: predictions.csv, failures.csv, summary.html, summary.json and
each finished study's folder, in a zip whose bytes depend only on its content.

Layout (docs/batch.md)::

    predictions.csv                      one study row and one row per breast of every study
    failures.csv                         every rejected input or failed study, code and sentence
    summary.html                         a self-contained table of studies and failures
    summary.json                         as ``mammocad analyze`` writes it
    <StudyInstanceUID>/result.json       and overlays/*.png, dicom/ (with ``--dicom``)
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mammocad.commands.analyze import DISCLAIMER, AnalyzeSummary

PREDICTION_COLUMNS = (
    "study_instance_uid",
    "level",
    "laterality",
    "malignancy_probability",
    "suspicion",
    "status",
    # last, so readers of the first six columns are unaffected: joins rows to labels kept per
    # patient (CBIS-DDSM, CMMD, RSNA 2023 give breast outcomes by patient and side)
    "patient_id",
)
FAILURE_COLUMNS = ("source", "study_instance_uid", "rejection_code", "text")
#: files of the work folder that are bookkeeping, not results
_PRIVATE = frozenset({".done", "study.json"})
# a fixed timestamp (the zip epoch) so that the same results give the same archive bytes
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return escape(f"{value:.2f}" if isinstance(value, float) else str(value))


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(quote(href), quote=True)}">{escape(text)}</a>'


def _study_rows(summary: AnalyzeSummary) -> list[str]:
    overlays: dict[str, list[str]] = {}
    for entry in summary.inputs:
        if entry.get("overlay") and entry["study_instance_uid"]:
            overlays.setdefault(entry["study_instance_uid"], []).append(entry["overlay"])
    rows = []
    for study in summary.studies:
        uid = study["study_instance_uid"]
        links = [_link(path, Path(path).stem) for path in overlays.get(uid, [])]
        result = _link(study["result"], "result.json") if study["result"] else "—"
        rows.append(
            "<tr>"
            f"<td>{escape(uid)}</td><td>{_cell(study['status'])}</td>"
            f"<td>{_cell(study['malignancy_probability'])}</td>"
            f"<td>{_cell(study['suspicion'])}</td><td>{result}</td>"
            f"<td>{'<br>'.join(links) or '—'}</td>"
            "</tr>"
        )
    return rows


def _failure_rows(failures: Sequence[dict[str, Any]]) -> list[str]:
    return [
        "<tr>" + "".join(f"<td>{_cell(entry.get(key))}</td>" for key in FAILURE_COLUMNS) + "</tr>"
        for entry in failures
    ]


def summary_html(summary: AnalyzeSummary, failures: Sequence[dict[str, Any]]) -> str:
    """A plain HTML page, no script or external resource; every text is escaped."""
    model = summary.model
    head = "".join(f"<th>{escape(name)}</th>" for name in FAILURE_COLUMNS)
    failures_table = (
        f"<table><tr>{head}</tr>{''.join(_failure_rows(failures))}</table>"
        if failures
        else "<p>None: every input was processed.</p>"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8"><title>mammocad batch</title>',
            "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;"
            "text-align:left;vertical-align:top}</style></head><body>",
            "<h1>mammocad batch</h1>",
            f"<p>Model {escape(str(model.get('name')))} {escape(str(model.get('version')))} "
            f"(sha256 {escape(str(model.get('sha256')))}) — {escape(DISCLAIMER)}.</p>",
            f"<h2>Studies ({len(summary.studies)})</h2>",
            "<table><tr><th>StudyInstanceUID</th><th>status</th><th>malignancy probability</th>"
            "<th>suspicion</th><th>result</th><th>overlays</th></tr>",
            *_study_rows(summary),
            "</table>",
            f"<h2>Failures ({len(failures)})</h2>",
            failures_table,
            "</body></html>",
            "",
        ]
    )


def _add(handle: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    handle.writestr(info, data)


def _study_files(folders: Sequence[Path]) -> list[tuple[str, Path]]:
    files = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and path.name not in _PRIVATE:
                files.append((path.relative_to(folder.parent).as_posix(), path))
    return sorted(files)


def write_archive(
    out: Path,
    *,
    summary: AnalyzeSummary,
    predictions: Sequence[dict[str, Any]],
    study_folders: Sequence[Path],
) -> None:
    """Write the archive to ``out`` (via a temporary file and one rename: never half a zip)."""
    failures = [entry for entry in summary.inputs if entry["status"] == "rejected"]
    generated = {
        "failures.csv": _csv_text(FAILURE_COLUMNS, failures),
        "predictions.csv": _csv_text(PREDICTION_COLUMNS, predictions),
        "summary.html": summary_html(summary, failures),
        "summary.json": json.dumps(summary.to_dict(), indent=2) + "\n",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w") as handle:
        for name, text in generated.items():
            # a file name that is not UTF-8 (a Latin-1 name on Linux) comes as surrogates:
            # written as \udce9, as summary.json has it, instead of failing the archive
            _add(handle, name, text.encode("utf-8", "backslashreplace"))
        for name, path in _study_files(study_folders):
            _add(handle, name, path.read_bytes())
    partial.replace(out)
