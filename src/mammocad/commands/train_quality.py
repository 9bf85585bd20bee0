"""``mammocad train quality``: fit the learned quality model (docs/quality.md).

Examples: phantom views (size small) good and with every defect the generator makes, plus
degraded copies (:mod:`mammocad.quality.degrade`) of phantoms and of the real images found in
the ``--real`` folders, which are themselves good examples. Each goes through
``preprocess_image`` and the gate's measurements; images preprocessing rejects are left out
(the gate refuses them without the model). Everything follows from ``--seed``.
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mammocad.datasets.phantoms import view_image
from mammocad.errors import MammocadError, PreprocessError
from mammocad.io import read_image
from mammocad.preprocess import PreprocessParams, preprocess_image
from mammocad.quality.degrade import DEGRADATIONS
from mammocad.quality.features import FEATURE_NAMES, features
from mammocad.quality.learned import GOOD, QualityModel
from mammocad.quality.measure import measure
from mammocad.quality.params import QualityParams
from mammocad.structures import FloatArray, Image, Laterality, ViewPosition
from mammocad.synthetic import Defect, generate_view

#: issue code each phantom defect should raise
DEFECT_CODES = {
    Defect.NOISE: "no_anatomy",
    Defect.BLANK: "blank",
    Defect.BURNED_OUT: "overexposed",
    Defect.CUT_OFF: "breast_cut_off",
    Defect.MOTION_BLUR: "motion_blur",
}
CLASSES = (
    GOOD,
    "no_anatomy",
    "blank",
    "overexposed",
    "underexposed",
    "breast_cut_off",
    "motion_blur",
)
REAL_SUFFIXES = (".png", ".pgm", ".dcm")
MAX_ROWS = 1024  # real images are shrunk to this height first: features are taken at 0.4 mm
CLIP = 8.0  # standardised features are clipped here so an odd image cannot dominate the logits


@dataclass(slots=True)
class Examples:
    rows: list[FloatArray]
    labels: list[str]
    sources: Counter[str]

    def add(self, image: Image, label: str, source: str, params: QualityParams) -> None:
        row = feature_row(image, params)
        if row is not None:
            self.rows.append(row)
            self.labels.append(label)
            self.sources[f"{source}:{label}"] += 1


def feature_row(image: Image, params: QualityParams) -> FloatArray | None:
    """The model's features, or None when preprocessing rejects the image."""
    try:
        prepared = preprocess_image(image, PreprocessParams())
    except PreprocessError:
        return None
    return features(prepared, params, measure(prepared, params))


def phantom(seed: int, defects: Sequence[Defect] = (), size: str = "small") -> Image:
    """One phantom view; CC/MLO and L/R alternate with the seed."""
    view = ViewPosition.CC if seed % 2 == 0 else ViewPosition.MLO
    side = Laterality.L if (seed // 2) % 2 == 0 else Laterality.R
    made = generate_view(seed=seed, laterality=side, view=view, size=size, defects=defects)
    return view_image(made, source=f"phantom_{seed}.dcm")


def degraded(image: Image, rng: np.random.Generator, count: int) -> Iterator[tuple[Image, str]]:
    """``count`` distinct random degradations of a good image, with their issue codes."""
    try:
        tissue = preprocess_image(image, PreprocessParams()).tissue_mask
    except PreprocessError:
        return
    pixels = np.asarray(image.pixels, dtype=np.float32)
    spacing = image.spacing_or_assumed_mm[0]
    names = sorted(DEGRADATIONS)
    for index in rng.choice(len(names), size=min(count, len(names)), replace=False):
        degrade, code = DEGRADATIONS[names[int(index)]]
        yield replace(image, pixels=degrade(pixels, tissue, rng, spacing), messages=[]), code


#: how far into the breast a framed copy's chest-wall edge is cut: a detector's edge runs through
#: the tissue at the chest wall
CHEST_WALL_CUT_MM = 1.0


def framed(image: Image, margin_mm: float) -> Image | None:
    """``image`` cut to its breast with ``margin_mm`` of background on the three open sides and
    the tissue running into the chest-wall edge — how a digital detector frames a breast, where
    films and phantoms show much background; ``None`` when preprocessing rejects the image."""
    try:
        prepared = preprocess_image(image, PreprocessParams())
    except PreprocessError:
        return None
    pixels = np.asarray(image.pixels, dtype=np.float32)
    rows, columns = pixels.shape
    spacing = image.spacing_or_assumed_mm[0]
    margin, inset = round(margin_mm / spacing), round(CHEST_WALL_CUT_MM / spacing)
    x0, y0, x1, y1 = (round(v) for v in prepared.breast_box)
    top, bottom = max(0, y0 - margin), min(rows, y1 + margin)
    if prepared.chest_wall_on_right:
        left, right = max(0, x0 - margin), x1 - inset
    else:
        left, right = x0 + inset, min(columns, x1 + margin)
    cut = np.ascontiguousarray(pixels[top:bottom, left:right])
    return replace(
        image,
        pixels=cut,
        padding_mask=None,
        rows=cut.shape[0],
        columns=cut.shape[1],
        # the film's spacing, stated: a file without one would otherwise have it assumed from
        # the shorter cut height, and the copy's working grid would be finer than the film's
        pixel_spacing_mm=(spacing, image.spacing_or_assumed_mm[1]),
    )


def real_images(folders: Sequence[Path]) -> Iterator[Image]:
    """Every PNG, PGM and DICOM under the folders (sorted), shrunk to ``MAX_ROWS``; files
    that cannot be read are skipped."""
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in REAL_SUFFIXES):
            try:
                image = read_image(path, view=ViewPosition.MLO)
            except (MammocadError, OSError, ValueError):
                continue
            if image.is_processed and image.pixels is not None:
                yield shrink(image)


def shrink(image: Image) -> Image:
    pixels = np.asarray(image.pixels, dtype=np.float32)
    factor = MAX_ROWS / pixels.shape[0]
    if factor >= 1.0:
        return image
    size = (max(16, round(pixels.shape[1] * factor)), MAX_ROWS)
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    spacing = image.pixel_spacing_mm
    return replace(
        image,
        pixels=np.asarray(small, dtype=np.float32),
        padding_mask=None,
        rows=small.shape[0],
        columns=small.shape[1],
        pixel_spacing_mm=None if spacing is None else (spacing[0] / factor, spacing[1] / factor),
    )


def collect(
    *, phantoms: int, seed: int, real: Sequence[Path], params: QualityParams, framed_real: bool
) -> Examples:
    examples = Examples(rows=[], labels=[], sources=Counter())
    rng = np.random.default_rng(seed)
    for s in range(seed, seed + phantoms):
        good = phantom(s)
        examples.add(good, GOOD, "phantom", params)
        for defect, code in DEFECT_CODES.items():
            examples.add(phantom(s, (defect,)), code, "phantom", params)
        for image, code in degraded(good, rng, 2):
            examples.add(image, code, "phantom-degraded", params)
    for image in real_images(real):
        examples.add(image, GOOD, "real", params)
        if framed_real:  # one draw more from rng only then: the default run is unchanged
            tight = framed(image, margin_mm=float(rng.uniform(2.0, 10.0)))
            if tight is not None:
                examples.add(tight, GOOD, "real-framed", params)
        for copy, code in degraded(image, rng, 2):
            examples.add(copy, code, "real-degraded", params)
    return examples


def make_estimator(seed: int) -> Any:
    """The unfitted scikit-learn estimator (imported here: training needs it, inference not)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:  # pragma: no cover - the ml extra is installed in CI
        raise MammocadError(
            "training the quality model needs scikit-learn: pip install 'mammocad[ml]'"
        ) from error
    # balanced: good images outnumber each defect kind several times over
    return LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced", random_state=seed)


def fit_model(
    x: FloatArray, labels: Sequence[str], *, seed: int, description: dict[str, object]
) -> QualityModel:
    """Standardise, clip and fit a multinomial logistic regression (scikit-learn, training
    only); the refusal threshold sits above every good training example's P(defective)."""
    classes = [c for c in CLASSES if c in set(labels)]
    if classes[:1] != [GOOD] or len(classes) < 2:
        raise MammocadError("the quality model needs good images and at least one defect kind")
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    z = np.clip((x - mean) / scale, -CLIP, CLIP)
    y = np.array([classes.index(label) for label in labels])
    fitted = make_estimator(seed).fit(z, y)
    p_defective = 1.0 - fitted.predict_proba(z)[:, 0]
    worst_good = float(p_defective[y == 0].max()) if np.any(y == 0) else 0.0
    return QualityModel(
        feature_names=FEATURE_NAMES,
        classes=tuple(classes),
        mean=mean,
        scale=scale,
        clip=CLIP,
        coef=np.asarray(fitted.coef_, dtype=np.float64),
        intercept=np.asarray(fitted.intercept_, dtype=np.float64),
        refuse_probability=float(np.clip(worst_good + 0.05, 0.8, 0.99)),
        description=description,
    )


def run_train_quality(
    *, out: Path, phantoms: int, seed: int, real: Sequence[Path], framed: bool = False
) -> tuple[QualityModel, Counter[str]]:
    """Collect the examples, fit and write the model to ``out``; returns it and the counts."""
    cv2.setNumThreads(1)
    start = time.perf_counter()
    params = QualityParams()
    examples = collect(phantoms=phantoms, seed=seed, real=real, params=params, framed_real=framed)
    description: dict[str, object] = {
        "command": _command(out, phantoms, seed, real) + (" --framed" if framed else ""),
        "phantom_seeds": [seed, seed + phantoms - 1],
        "real_folders": [folder.name for folder in real],
        "examples": dict(sorted(examples.sources.items())),
        "model": "multinomial logistic regression (scikit-learn), standardised clipped features",
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
    }
    model = fit_model(np.stack(examples.rows), examples.labels, seed=seed, description=description)
    description["seconds"] = round(time.perf_counter() - start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return model, examples.sources


def _command(out: Path, phantoms: int, seed: int, real: Sequence[Path]) -> str:
    folders = "".join(f" --real {folder}" for folder in real)
    return f"mammocad train quality --out {out} --phantoms {phantoms} --seed {seed}{folders}"
