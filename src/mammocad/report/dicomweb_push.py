"""Send a study's DICOM outputs (SR, Secondary Captures, GSPS) to a DICOMweb server.

One STOW-RS Store Transaction (DICOM PS3.18 §10.5): ``POST {url}/studies`` with a
``multipart/related; type="application/dicom"`` body, one part per object, through
``dicomweb-client``. The server answers with a Store Instances Response Module
(PS3.18 §10.5.3): stored objects in ReferencedSOPSequence, refused ones in FailedSOPSequence
with a FailureReason. A delivery problem is returned as a :class:`PushReport`, never raised:
the caller decides what a failed delivery means (the service keeps the result, see
``jobs.stages.PushStage``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

#: requests per push (the first and two retries), on 408/429/503/504 and connection errors
ATTEMPTS = 3
#: backoff before retry n is 2**n × this, in ms (dicomweb-client / retrying): 0.5 s, then 1 s
BACKOFF_MS = 250


@dataclass(frozen=True, slots=True, kw_only=True)
class DicomwebDestination:
    """Where results go: ``url`` is the DICOMweb base (``http://pacs:8042/dicom-web``), the
    objects are POSTed to ``{url}/studies``; ``token`` is sent as ``Authorization: Bearer``."""

    url: str
    token: str | None = None
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"DICOMweb URL must start with http:// or https://, got {self.url!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


@dataclass(slots=True, kw_only=True)
class PushReport:
    """What one push did: ``sent`` objects (SOPInstanceUIDs) the server stored, and one
    sentence per ``failures`` (the whole request, or one refused object)."""

    url: str
    objects: int
    sent: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One sentence for logs and the job: what was sent, what failed, what to do."""
        text = f"STOW-RS push to {self.url}/studies: {len(self.sent)} of {self.objects} sent"
        if self.ok:
            return text
        return f"{text}; failed: {'; '.join(self.failures)}"


def push_instances(paths: Sequence[Path], *, destination: DicomwebDestination) -> PushReport:
    """Store the DICOM files ``paths`` on ``destination`` in one STOW-RS request.

    Never raises for a delivery problem (server down, refused, bad answer): the report's
    ``failures`` say what happened, with the server's HTTP status and reason where it
    answered.
    """
    url = destination.url.rstrip("/")
    report = PushReport(url=url, objects=len(paths))
    if not paths:
        return report
    datasets = [pydicom.dcmread(path) for path in paths]
    try:
        answer = _client(destination).store_instances(datasets)
    except Exception as error:  # requests' and dicomweb-client's many types
        report.failures.append(_request_failure(error))
        return report
    refused = {str(item.get("ReferencedSOPInstanceUID", "")): item for item in _failed(answer)}
    for item in refused.values():
        reason = item.get("FailureReason")
        report.failures.append(
            f"{item.get('ReferencedSOPInstanceUID', '?')} refused (FailureReason "
            f"{'?' if reason is None else f'0x{int(reason):04X}'})"
        )
    report.sent = [str(ds.SOPInstanceUID) for ds in datasets if ds.SOPInstanceUID not in refused]
    return report


def _client(destination: DicomwebDestination) -> Any:
    from dicomweb_client.api import DICOMwebClient

    headers = {"Authorization": f"Bearer {destination.token}"} if destination.token else None
    client = DICOMwebClient(
        destination.url.rstrip("/"), headers=headers, timeout=destination.timeout_s
    )
    client.set_http_retry_params(
        retry=True, max_attempts=ATTEMPTS, wait_exponential_multiplier=BACKOFF_MS
    )
    return client


def _failed(answer: Any) -> list[Dataset]:
    if not isinstance(answer, Dataset):
        return []
    return list(answer.get("FailedSOPSequence", []))


def _request_failure(error: Exception) -> str:
    """``503 Service Unavailable (body)`` from the server, or the connection error."""
    response = getattr(error, "response", None)
    attempt = getattr(error, "last_attempt", None)  # retrying's RetryError: still retriable
    if attempt is not None and not attempt.has_exception:
        response = attempt.value
    if response is not None:
        body = (response.text or "").strip().replace("\n", " ")[:200]
        text = f"{response.status_code} {response.reason or ''}".strip()
        return f"{text} ({body})" if body else text
    return f"{type(error).__name__}: {error}"
