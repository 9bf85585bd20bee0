"""Checks of the ``--data`` / ``--val`` specifications of the train and eval commands, made
where the user typed them: a value the data sources would only refuse (or quietly misread)
after minutes of rendering becomes one sentence saying what to write instead."""

from __future__ import annotations

from pathlib import Path

from mammocad.datasets.spec import DataSpec, parse_spec

#: the phantom sizes ``mammocad.synthetic`` renders
PHANTOM_SIZES = ("small", "full")
_RATES = ("malignant_rate", "benign_rate", "one_view_rate")


def parse_checked_spec(text: str) -> DataSpec:
    """``parse_spec(text)`` with every value checked; ValueError with the fix otherwise."""
    spec = parse_spec(text)
    keys = [item.partition("=")[0].strip() for item in text.partition(":")[2].split(",") if item]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"{text!r} gives {', '.join(twice)} more than once: give each key once")
    if spec.kind == "phantom":
        _check_phantom(spec, text)
    else:
        _check_mias(spec, text)
    return spec


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
    path = spec.options.get("path")
    if path is None:
        raise ValueError(f"{text!r} needs path=DIR (the mini-MIAS folder holding Info.txt)")
    if not (Path(path) / "Info.txt").is_file():
        where = "is not a folder" if not Path(path).is_dir() else "holds no Info.txt"
        raise ValueError(
            f"path={path} in {text!r} {where}: point it at the mini-MIAS folder holding "
            "Info.txt and the mdbNNN images"
        )
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
