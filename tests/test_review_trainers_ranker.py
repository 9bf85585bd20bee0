"""Review of ``mammocad train ranker``: the held-out --test evaluations must not be the
training evaluations (the recorded "test" gain would be measured on the fit's own boxes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from mammocad.cli import app


def _evaluation(bundle: Path, folder: Path, seed: int) -> Path:
    """An `eval detector --out` folder of ``bundle``: 20 images, 8 boxes each, two of them on
    a lesion (one malignant)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    classes = [c for c in manifest["classes"] if c != manifest["landmark"]]
    rng = np.random.default_rng(seed)
    images = []
    for index in range(20):
        corners = rng.uniform(0, 150, (8, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(10, 40, (8, 2))], 1).round(2)
        images.append(
            {
                "image_id": f"{seed}-{index}",
                "truth": {
                    "boxes": boxes[:2].tolist(),
                    "labels": [classes[0], classes[0]],
                    "malignant": [1, 0],
                    "annotated": manifest["classes"],
                },
                "predictions": {
                    "boxes": boxes.tolist(),
                    "scores": rng.uniform(0.05, 1, 8).round(3).tolist(),
                    "labels": [classes[0]] * 8,
                    "malignancy": rng.uniform(0, 1, 8).round(3).tolist(),
                },
            }
        )
    folder.mkdir(parents=True)
    document = {"format": "mammocad.froc-images/1", "classes": classes, "images": images}
    (folder / "images.json").write_text(json.dumps(document))
    model = {"name": manifest["name"], "version": manifest["version"], "sha256": manifest["sha256"]}
    summary = {"model": model, "data": [{"kind": "phantom", "seed": str(seed)}]}
    (folder / "froc.json").write_text(json.dumps(summary))
    return folder


def test_ranker_test_folder_that_is_a_training_folder_is_a_usage_error(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    train = _evaluation(tiny_bundle, tmp_path / "train", 1)
    other = _evaluation(tiny_bundle, tmp_path / "other", 2)
    args = ["train", "ranker", str(train), "--model", str(tiny_bundle), "--bootstrap", "5"]
    same = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--test", str(train)])
    assert same.exit_code == 2, same.output
    assert "--test" in same.output
    assert not (tmp_path / "a").exists()
    fine = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--test", str(other)])
    assert fine.exit_code == 0, fine.output
