"""Training samples for the detector, independent of where they came from.

A dataset is anything with ``__len__`` and ``__getitem__`` returning :class:`DetectionSample`;
adapters for phantoms and public datasets produce them. Samples can be saved to one ``.pt`` file
so a machine with only torch, torchvision, numpy and OpenCV (a GPU node) can train from them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from mammocad.detect.containers import DetectionTarget

_FORMAT = "mammocad.detection-samples/1"


@dataclass(frozen=True, kw_only=True)
class DataSource:
    """A data set and the classes it annotates.

    A class outside ``annotated_classes`` may be present but unmarked in this source's images:
    training never treats it as background there, and validation never counts its
    predictions as false positives there.
    """

    name: str
    annotated_classes: frozenset[str]

    def annotated_mask(self, classes: Sequence[str]) -> Tensor:
        """``bool[len(classes)]``: True where this source annotates the class."""
        unknown = set(self.annotated_classes) - set(classes)
        if unknown:
            raise ValueError(
                f"source {self.name!r} declares classes {sorted(unknown)} that the detector "
                f"does not have ({list(classes)})"
            )
        return torch.tensor([name in self.annotated_classes for name in classes], dtype=torch.bool)


@dataclass(frozen=True, kw_only=True)
class DetectionSample:
    """One training image.

    ``image`` is ``float32[C, H, W]`` in ``[0, 1]``, chest wall on the left (the preprocessed
    model input); ``target`` boxes are in the same INPUT pixels.
    """

    image_id: str
    image: Tensor
    target: DetectionTarget
    source: str = ""

    def __post_init__(self) -> None:
        if self.image.ndim != 3:
            raise ValueError(f"image must be [C, H, W], got {tuple(self.image.shape)}")


class DetectionDataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> DetectionSample: ...


def annotated_names(sample: DetectionSample, classes: Sequence[str]) -> Collection[str]:
    """Class names the sample's source annotates."""
    flags = sample.target.annotated.tolist()
    return {name for name, known in zip(classes, flags, strict=True) if known}


def save_samples(
    samples: Sequence[DetectionSample], path: str | Path, *, dtype: torch.dtype = torch.float16
) -> Path:
    """Write samples to one file; images are stored as ``dtype`` (float16 halves the size and
    keeps 11 bits of precision, more than a 1024×832 resize of a 12-bit image carries)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = [
        {
            "image_id": s.image_id,
            "source": s.source,
            "image": s.image.to(dtype),
            "boxes": s.target.boxes,
            "labels": s.target.labels,
            "malignant": s.target.malignant,
            "annotated": s.target.annotated,
        }
        for s in samples
    ]
    temporary = out.with_name(out.name + ".partial")
    torch.save({"format": _FORMAT, "samples": records}, temporary)
    temporary.replace(out)
    return out


def load_samples(path: str | Path) -> list[DetectionSample]:
    """Read :func:`save_samples` output; images come back as float32."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a mammocad sample file (expected format {_FORMAT})")
    return [
        DetectionSample(
            image_id=r["image_id"],
            source=r["source"],
            image=r["image"].to(torch.float32),
            target=DetectionTarget(
                boxes=r["boxes"],
                labels=r["labels"],
                malignant=r["malignant"],
                annotated=r["annotated"],
            ),
        )
        for r in data["samples"]
    ]
