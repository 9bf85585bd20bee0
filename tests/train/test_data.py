"""Samples: saving for a bare GPU node, data sources, the toy set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mammocad.detect import DEFAULT_CLASSES
from mammocad.train import DataSource, load_samples, make_toy_samples, save_samples
from mammocad.train.data import annotated_names


def test_samples_round_trip_through_a_file(tmp_path: Path) -> None:
    samples = make_toy_samples(3, size=(64, 52), seed=4)
    path = save_samples(samples, tmp_path / "sub" / "samples.pt")
    loaded = load_samples(path)
    assert [s.image_id for s in loaded] == [s.image_id for s in samples]
    for ours, theirs in zip(samples, loaded, strict=True):
        assert theirs.image.dtype == torch.float32
        assert torch.allclose(theirs.image, ours.image, atol=1e-3)  # stored as float16
        assert torch.equal(theirs.target.boxes, ours.target.boxes)
        assert torch.equal(theirs.target.labels, ours.target.labels)
        assert torch.equal(theirs.target.malignant, ours.target.malignant)
        assert torch.equal(theirs.target.annotated, ours.target.annotated)


def test_other_files_are_refused(tmp_path: Path) -> None:
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a mammocad sample file"):
        load_samples(tmp_path / "other.pt")


def test_data_source_mask() -> None:
    mias = DataSource(name="mini-mias", annotated_classes=frozenset({"mass", "calcification"}))
    mask = mias.annotated_mask(DEFAULT_CLASSES)
    assert mask.dtype == torch.bool
    assert [n for n, m in zip(DEFAULT_CLASSES, mask.tolist(), strict=True) if m] == [
        "mass",
        "calcification",
    ]
    with pytest.raises(ValueError, match="does not have"):
        DataSource(name="x", annotated_classes=frozenset({"tumour"})).annotated_mask(
            DEFAULT_CLASSES
        )


def test_toy_samples_are_seeded_and_valid() -> None:
    first = make_toy_samples(6, size=(96, 80), seed=9)
    again = make_toy_samples(6, size=(96, 80), seed=9)
    assert all(torch.equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    for s in first:
        boxes = s.target.boxes
        assert s.image.shape == (2, 96, 80) and s.image.min() >= 0 and s.image.max() <= 1
        assert torch.all(boxes[:, 0::2] <= 80) and torch.all(boxes[:, 1::2] <= 96)
        assert DEFAULT_CLASSES.index("nipple") in s.target.labels.tolist()
        assert annotated_names(s, DEFAULT_CLASSES) == set(DEFAULT_CLASSES)
    empty = make_toy_samples(4, size=(96, 80), seed=1, empty_fraction=1.0)
    assert all(s.target.labels.tolist() == [DEFAULT_CLASSES.index("nipple")] for s in empty)
