"""``benchmarks/froc_paired.py --mias``: a woman's two films are resampled together (review).

Its image-level AUC intervals resampled films one by one, while mini-MIAS holds both breasts
of each woman and every other interval of the project resamples patients.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from mammocad.datasets.mias import load_mias
from mammocad.eval.froc import ImagePredictions, ImageTruth
from mammocad.eval.froc_pool import FrocImages, save_froc_images

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "froc_paired.py"


def _evaluation(image_ids: list[str], lesion: list[bool], scores: np.ndarray) -> FrocImages:
    predictions, truths = [], []
    for has_lesion, score in zip(lesion, scores, strict=True):
        box = np.array([[100.0, 100.0, 160.0, 160.0]])
        predictions.append(
            ImagePredictions(boxes=box, scores=[score], labels=["mass"], malignancy=[score])
        )
        truths.append(
            ImageTruth(boxes=box if has_lesion else np.zeros((0, 4)),
                       labels=["mass"] if has_lesion else [], malignant=[0] if has_lesion else [])
        )  # fmt: skip
    return FrocImages(
        classes=("mass",), image_ids=image_ids, predictions=predictions, truths=truths
    )


def _interval(output: str) -> tuple[float, float]:
    match = re.search(
        r"strongest detection.*B − A [+-][0-9.]+ \[([+-][0-9.]+), ([+-][0-9.]+)\]", output
    )
    assert match, output
    return float(match[1]), float(match[2])


def test_patients_are_resampled_with_mias(shared_data: Path, tmp_path: Path) -> None:
    records = load_mias(shared_data / "mini-mias")[:60]  # 30 women, both films
    ids = [record.image_id for record in records]
    rng = np.random.default_rng(3)
    # a woman's films share whether they hold a lesion and how the models score them
    woman = np.repeat(rng.random(len(ids) // 2), 2)
    lesion = list(np.repeat(rng.random(len(ids) // 2) < 0.4, 2))
    a = _evaluation(ids, lesion, woman * 0.5 + 0.3 * np.array(lesion))
    b = _evaluation(ids, lesion, woman * 0.5 + 0.1 * np.array(lesion))
    save_froc_images(a, tmp_path / "a" / "images.json")
    save_froc_images(b, tmp_path / "b" / "images.json")
    runs = {}
    for name, extra in (("images", []), ("patients", ["--mias", str(shared_data / "mini-mias")])):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), str(tmp_path / "a"), str(tmp_path / "b"),
             "--bootstrap", "400", *extra],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        assert f"({name} resampled)" in done.stdout
        runs[name] = _interval(done.stdout)
    width = {name: high - low for name, (low, high) in runs.items()}
    assert width["patients"] > width["images"] * 1.15
