"""Data specifications on the command line: ``KIND:key=value,key=value``.

* ``phantom:n=400,seed=1000,size=full[,malignant_rate=0.4,benign_rate=0.4,one_view_rate=0]``
  — phantom studies rendered in memory (``mammocad.synthetic``), every class annotated.
* ``mias:path=DIR[,folds=5,fold=K | exclude_fold=K,fold_seed=0]`` — mini-MIAS from a local
  copy; ``fold`` keeps one patient-level fold, ``exclude_fold`` keeps the others (for
  cross-validation).

Every kind also takes ``repeat=K`` (default 1): in training each of the source's images is
seen K times per epoch (augmented differently each time), so a small real set is not
outweighed by rendered phantoms. Evaluations count every image once and refuse ``repeat``.
A key a kind does not know, a key given twice and a value out of range (``n=abc``, ``size=huge``,
``fold=7`` with ``folds=5``, ``fold`` with ``exclude_fold``) are errors where the spec is
parsed, not after minutes of rendering. :func:`check_local_data` also asks whether a
``path`` and its films are there (``parse_spec`` does not: specs naming data of another
machine parse).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammocad.datasets.mias import film_lesions, load_mias, mias_samples, patient_folds
from mammocad.datasets.phantoms import ANNOTATED_LABELS, PhantomSpec, phantom_samples
from mammocad.datasets.records import AnnotatedImage
from mammocad.preprocess import PreprocessParams
from mammocad.train.data import DetectionSample

KINDS = ("phantom", "mias")
#: the phantom sizes ``mammocad.synthetic`` renders
PHANTOM_SIZES = ("small", "full")
_RATES = ("malignant_rate", "benign_rate", "one_view_rate")
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
        if key.strip() in options:
            raise ValueError(f"{text!r} gives {key.strip()} more than once: give each key once")
        options[key.strip()] = value.strip()
    unknown = sorted(set(options) - set(KEYS[kind]))
    if unknown:
        raise ValueError(
            f"{kind} does not take {', '.join(unknown)} in {text!r}: "
            f"its keys are {', '.join(KEYS[kind])}"
        )
    spec = DataSpec(kind=kind, options=options)
    _ = spec.repeat  # a bad repeat= fails here, where the user typed it
    if kind == "phantom":
        _check_phantom(spec, text)
    else:
        _check_mias(spec, text)
    return spec


def check_local_data(spec: DataSpec, text: str | None = None) -> None:
    """ValueError when ``spec`` names a folder this machine lacks (a mini-MIAS ``path`` that
    is not there, holds no Info.txt, or none of the films Info.txt lists): asked by the
    commands before anything is rendered."""
    if spec.kind != "mias":
        return
    path = Path(spec.options["path"])
    if not (path / "Info.txt").is_file():
        where = "is not a folder" if not path.is_dir() else "holds no Info.txt"
        raise ValueError(
            f"path={path} in {text or _text_of(spec)!r} {where}: point it at the mini-MIAS "
            "folder holding Info.txt and the mdbNNN images"
        )
    if not load_mias(path):  # the films kept elsewhere (a subfolder): no film would be read
        raise ValueError(
            f"path={path} in {text or _text_of(spec)!r} holds none of the "
            f"{len(film_lesions(path))} films its Info.txt lists (mdbNNN.png or .pgm): point "
            "it at the folder holding the films, with Info.txt beside them"
        )


def _text_of(spec: DataSpec) -> str:
    return f"{spec.kind}:" + ",".join(f"{key}={value}" for key, value in spec.options.items())


def _whole(spec: DataSpec, key: str, text: str, *, least: int) -> int | None:
    """The whole number ``key`` holds (``None`` when absent); ValueError below ``least``."""
    value = spec.options.get(key)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) < least:
        raise ValueError(f"{key}={value} in {text!r} must be a whole number ≥ {least}")
    return int(value)


def _check_phantom(spec: DataSpec, text: str) -> None:
    _whole(spec, "n", text, least=1)
    _whole(spec, "seed", text, least=0)
    size = spec.options.get("size", "full")
    if size not in PHANTOM_SIZES:
        raise ValueError(f"size={size} in {text!r}: use size={' or size='.join(PHANTOM_SIZES)}")
    for key in _RATES:
        value = spec.options.get(key)
        if value is None:
            continue
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{key}={value} in {text!r} must be a share between 0 and 1")


def _check_mias(spec: DataSpec, text: str) -> None:
    if "path" not in spec.options:
        raise ValueError(f"{text!r} needs path=DIR (the mini-MIAS folder holding Info.txt)")
    folds = _whole(spec, "folds", text, least=2) or 5
    _whole(spec, "fold_seed", text, least=0)
    if "fold" in spec.options and "exclude_fold" in spec.options:
        raise ValueError(f"{text!r}: give fold=K (that fold only) or exclude_fold=K, not both")
    for key in ("fold", "exclude_fold"):
        fold = _whole(spec, key, text, least=0)
        if fold is not None and fold >= folds:
            raise ValueError(
                f"{key}={fold} in {text!r}: with folds={folds} the folds are 0 to {folds - 1}"
            )


def refuse_repeat(specs: Sequence[DataSpec], purpose: str) -> None:
    """ValueError when a spec asks for ``repeat``: ``purpose`` counts every image once."""
    for spec in specs:
        if spec.repeat != 1:
            raise ValueError(
                f"{purpose} counts every image once: drop repeat={spec.repeat} from the "
                f"{spec.kind} data (repeat weights training data only)"
            )


def refuse_shared_data(data: Sequence[DataSpec], val: Sequence[DataSpec]) -> None:
    """ValueError when ``--val`` holds studies or films of ``--data``, so the validation figures
    would be measured on training breasts.

    Phantom sets: a seed draws the same studies whatever the count (study i of both is one
    study), so a ``--val`` seed must not be a ``--data`` seed. mini-MIAS sets: the films each
    spec selects (its fold choice) from its own folder must not share a name (``mdbNNN`` is the
    database's own, so copies of the films in two folders are compared too). A folder without
    Info.txt is left to :func:`check_local_data`.
    """
    seeds = {int(spec.options.get("seed", "0")) for spec in data if spec.kind == "phantom"}
    for spec in val:  # as numbers: seed=07 draws seed 7's studies
        if spec.kind == "phantom" and (seed := int(spec.options.get("seed", "0"))) in seeds:
            raise ValueError(
                f"--val phantom seed {seed} is also a --data seed: the same seed draws the same "
                "studies, so validation would measure training breasts; give --val another seed"
            )
    folders: dict[Path, list[AnnotatedImage]] = {}  # each folder read once
    for held_out in (spec for spec in val if spec.kind == "mias"):
        for trained in (spec for spec in data if spec.kind == "mias"):
            _refuse_shared_films(trained, held_out, folders)


def selected_films(
    options: Mapping[str, str], folders: dict[Path, list[AnnotatedImage]]
) -> set[str] | None:
    """Names of the films a ``mias:`` source with these options selects from its own folder
    (its folds are drawn over the patients that folder holds; a relative ``path`` is read from
    the current folder), each folder read once into ``folders``. None when it cannot be told:
    no Info.txt there, an unreadable one, options that are not a fold choice, or a folder
    without its pictures (it would claim no film was selected)."""
    path = options.get("path")
    if path is None or not (Path(path) / "Info.txt").is_file():
        return None
    key = Path(path).resolve()
    try:
        if key not in folders:
            folders[key] = load_mias(Path(path))
        chosen = {record.image_id for record in select_mias(folders[key], options)}
    except (OSError, ValueError):
        return None
    return chosen if folders[key] else None


def _refuse_shared_films(
    trained: DataSpec, held_out: DataSpec, folders: dict[Path, list[AnnotatedImage]]
) -> None:
    trained_names = selected_films(trained.options, folders)
    held_out_names = selected_films(held_out.options, folders)
    if trained_names is None or held_out_names is None:
        return
    shared = trained_names & held_out_names
    if not shared:
        return
    advice = "validate on fold=K and train with exclude_fold=K (same folds and fold_seed)"
    if Path(trained.options["path"]).resolve() != Path(held_out.options["path"]).resolve():
        # the same fold options split two folders differently unless they hold the same films
        advice = "take --val and --data from one folder, " + advice
    raise ValueError(
        f"--val {_text_of(held_out)} shares {len(shared)} films with --data "
        f"{_text_of(trained)}, so validation would measure training films: {advice}"
    )


def select_mias(
    records: Sequence[AnnotatedImage], options: Mapping[str, str]
) -> list[AnnotatedImage]:
    """The films a ``mias:`` spec's ``fold`` / ``exclude_fold`` (``folds``, ``fold_seed``)
    options keep of ``records``; all of them without a fold option."""
    if "fold" not in options and "exclude_fold" not in options:
        return list(records)
    folds = patient_folds(
        records, folds=int(options.get("folds", "5")), seed=int(options.get("fold_seed", "0"))
    )
    if "fold" in options:
        return [r for r, f in zip(records, folds, strict=True) if f == int(options["fold"])]
    excluded = int(options["exclude_fold"])
    return [r for r, f in zip(records, folds, strict=True) if f != excluded]


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
    records = select_mias(load_mias(Path(opts["path"])), opts)
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
    "PHANTOM_SIZES",
    "DataSpec",
    "build_samples",
    "check_local_data",
    "iter_samples",
    "parse_spec",
    "phantom_spec",
    "refuse_repeat",
    "refuse_shared_data",
    "select_mias",
    "selected_films",
]
