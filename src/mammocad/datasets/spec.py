"""Data specifications on the command line: ``KIND:key=value,key=value``.

* ``phantom:n=400,seed=1000,size=full[,malignant_rate=0.4,benign_rate=0.4,one_view_rate=0]``
  — phantom studies rendered in memory (``mammocad.synthetic``), every class annotated.
* ``mias:path=DIR[,folds=5,fold=K | exclude_fold=K,fold_seed=0]`` — mini-MIAS from a local
  copy; ``fold`` keeps one patient-level fold, ``exclude_fold`` keeps the others (for
  cross-validation).

Every kind also takes ``repeat=K`` (default 1): in training each of the source's images is
seen K times per epoch (augmented differently each time), so a small real set is not
outweighed by rendered phantoms. Evaluations count every image once and refuse ``repeat``.
A key a kind does not know is an error, not a silent default.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammocad.datasets.mias import load_mias, mias_samples, patient_folds
from mammocad.datasets.phantoms import ANNOTATED_LABELS, PhantomSpec, phantom_samples
from mammocad.preprocess import PreprocessParams
from mammocad.train.data import DetectionSample

KINDS = ("phantom", "mias")
KEYS = {
    "phantom": ("n", "seed", "size", "malignant_rate", "benign_rate", "one_view_rate", "repeat"),
    "mias": ("path", "folds", "fold", "exclude_fold", "fold_seed", "repeat"),
}


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    kind: str
    options: dict[str, str]

    def describe(self) -> dict[str, Any]:
        """What the bundle manifest records as training data."""
        return {"kind": self.kind, **self.options}

    @property
    def repeat(self) -> int:
        """How many times per training epoch each image of this source is seen."""
        text = self.options.get("repeat", "1")
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"repeat={text} must be a whole number ≥ 1 (times per epoch)")
        return int(text)


def parse_spec(text: str) -> DataSpec:
    """``"phantom:n=10,seed=3"`` → DataSpec; ValueError with the expected form otherwise."""
    kind, _, rest = text.partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r} in {text!r}: use one of {', '.join(KINDS)}")
    options: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{item!r} in {text!r} is not key=value (e.g. {kind}:n=10,seed=1)")
        options[key.strip()] = value.strip()
    unknown = sorted(set(options) - set(KEYS[kind]))
    if unknown:
        raise ValueError(
            f"{kind} does not take {', '.join(unknown)} in {text!r}: "
            f"its keys are {', '.join(KEYS[kind])}"
        )
    spec = DataSpec(kind=kind, options=options)
    _ = spec.repeat  # a bad repeat= fails here, where the user typed it
    return spec


def refuse_repeat(specs: Sequence[DataSpec], purpose: str) -> None:
    """ValueError when a spec asks for ``repeat``: ``purpose`` counts every image once."""
    for spec in specs:
        if spec.repeat != 1:
            raise ValueError(
                f"{purpose} counts every image once: drop repeat={spec.repeat} from the "
                f"{spec.kind} data (repeat weights training data only)"
            )


def phantom_spec(spec: DataSpec) -> PhantomSpec:
    """The :class:`PhantomSpec` of a ``phantom:`` data spec (defaults as documented above), for
    callers that render whole studies, which have no use for ``repeat``."""
    refuse_repeat([spec], "a set of phantom studies (risk, fusion, benchmarks)")
    return _phantom_spec(spec)


def _phantom_spec(spec: DataSpec) -> PhantomSpec:
    if spec.kind != "phantom":
        raise ValueError(f"{spec.kind!r} is not a phantom data spec")
    opts = spec.options
    return PhantomSpec(
        n_studies=int(opts.get("n", "10")),
        seed=int(opts.get("seed", "0")),
        size=opts.get("size", "full"),
        malignant_rate=float(opts.get("malignant_rate", "0.4")),
        benign_rate=float(opts.get("benign_rate", "0.4")),
        one_view_rate=float(opts.get("one_view_rate", "0.0")),
    )


def _phantoms(
    spec: DataSpec, classes: Sequence[str], params: PreprocessParams, workers: int
) -> Iterator[DetectionSample]:
    phantom = _phantom_spec(spec)
    return phantom_samples(phantom, classes=classes, params=params, workers=workers)


def _mias(
    spec: DataSpec, classes: Sequence[str], params: PreprocessParams, workers: int
) -> Iterator[DetectionSample]:
    opts = spec.options
    if "path" not in opts:
        raise ValueError("mias needs path=DIR (the folder holding Info.txt and mdbNNN.png)")
    records = load_mias(Path(opts["path"]))
    if "fold" in opts or "exclude_fold" in opts:
        folds = patient_folds(
            records, folds=int(opts.get("folds", "5")), seed=int(opts.get("fold_seed", "0"))
        )
        if "fold" in opts:
            records = [r for r, f in zip(records, folds, strict=True) if f == int(opts["fold"])]
        else:
            excluded = int(opts["exclude_fold"])
            records = [r for r, f in zip(records, folds, strict=True) if f != excluded]
    return mias_samples(records, classes=classes, params=params, workers=workers)


def iter_samples(
    specs: Sequence[DataSpec],
    *,
    classes: Sequence[str],
    params: PreprocessParams,
    workers: int = 1,
) -> Iterator[DetectionSample]:
    """Every sample of every spec, in order, one at a time (a full-size sample is ~7 MB),
    prepared in ``workers`` processes; a spec's ``repeat`` yields each of its samples that many
    times (the same object, no copy)."""
    for spec in specs:
        source = (
            _phantoms(spec, classes, params, workers)
            if spec.kind == "phantom"
            else _mias(spec, classes, params, workers)
        )
        for sample in source:
            for _ in range(spec.repeat):
                yield sample


def build_samples(
    specs: Sequence[DataSpec],
    *,
    classes: Sequence[str],
    params: PreprocessParams,
    workers: int = 1,
) -> list[DetectionSample]:
    """Every sample of every spec, in order."""
    return list(iter_samples(specs, classes=classes, params=params, workers=workers))


__all__ = [
    "ANNOTATED_LABELS",
    "DataSpec",
    "build_samples",
    "iter_samples",
    "parse_spec",
    "phantom_spec",
    "refuse_repeat",
]
