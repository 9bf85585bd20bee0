"""Validation and evaluation never measure training data (review findings).

``train detector`` checked no --val against its --data (a phantom seed shared by both validated
the best epoch on training studies); no trainer compared mini-MIAS folds; ``eval breasts`` had
no --fold-seed, so a model trained with another fold seed was evaluated on films it trained on,
silently.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mammocad.cli import app
from mammocad.datasets.mias import load_mias
from mammocad.datasets.spec import parse_spec, refuse_shared_data, select_mias
from mammocad.detect.bundle import read_manifest
from mammocad.eval.mias_breasts import (
    select_fold,
    trained_films,
    training_data_of,
    training_overlap,
)

TINY = ["--input-size", "256x208", "--no-mlflow", "--warmup-steps", "1", "--no-augment"]


def test_train_detector_refuses_validation_phantoms_of_a_training_seed(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train", "detector", "--data", "phantom:n=2,seed=7,size=small",
         "--val", "phantom:n=1,seed=07,size=small", "--out", str(tmp_path / "run"), *TINY],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "also a --data seed" in " ".join(result.output.split())
    assert not (tmp_path / "run" / "mammocad-detector").exists()


@pytest.mark.parametrize(
    ("data", "val"),
    [("", "fold=0"), ("exclude_fold=1", "fold=0"), ("exclude_fold=0", "exclude_fold=1"),
     ("fold=2", "fold=2"), ("exclude_fold=0,fold_seed=1", "fold=0")],
)  # fmt: skip
def test_mini_mias_validation_sharing_training_films_is_refused(
    shared_data: Path, data: str, val: str
) -> None:
    base = f"mias:path={shared_data / 'mini-mias'}"
    trained, held_out = parse_spec(f"{base},{data}".rstrip(",")), parse_spec(f"{base},{val}")
    with pytest.raises(ValueError, match=r"shares [0-9]+ films"):
        refuse_shared_data([trained], [held_out])


def test_mini_mias_folds_left_out_of_training_may_validate(shared_data: Path) -> None:
    base = f"mias:path={shared_data / 'mini-mias'}"
    refuse_shared_data([parse_spec(f"{base},exclude_fold=3")], [parse_spec(f"{base},fold=3")])
    refuse_shared_data([parse_spec(f"{base},fold=1")], [parse_spec(f"{base},fold=4")])
    seeded = f"{base},fold_seed=5"
    refuse_shared_data([parse_spec(f"{seeded},exclude_fold=2")], [parse_spec(f"{seeded},fold=2")])


def test_films_a_bundle_trained_on_are_counted(shared_data: Path) -> None:
    root = shared_data / "mini-mias"
    records = load_mias(root)
    mias = {"kind": "mias", "path": str(root), "folds": "5", "exclude_fold": "0"}
    training = {"train": [{"kind": "phantom", "n": "2", "seed": "1"}, mias]}
    assert trained_films(training, select_fold(records, fold=0)) == {}
    fold1 = select_fold(records, fold=1)
    assert trained_films(training, fold1) == {
        f"mias:path={root},folds=5,exclude_fold=0": len(fold1)
    }
    # another fold seed: fold 0 of seed 1 is mostly films the seed-0 training saw
    assert trained_films(training, select_fold(records, fold=0, fold_seed=1))


@pytest.mark.parametrize("training", [None, [], "mias", {"train": "mias"}])
def test_training_data_of_another_shape_names_no_films(training: object) -> None:
    """Older or hand-edited manifests: no traceback, nothing to compare (review)."""
    assert trained_films(training, []) == {}


def _mias_folder(root: Path, films: range) -> Path:
    """A mini-MIAS folder of films ``mdbNNN`` for NNN in ``films``: Info.txt rows and empty
    pictures (selecting films reads no pixel)."""
    root.mkdir()
    refs = [f"mdb{n:03d}" for n in films]
    (root / "Info.txt").write_text("".join(f"{ref} G NORM\n" for ref in refs), encoding="ascii")
    for ref in refs:
        (root / f"{ref}.png").touch()
    return root


@pytest.mark.parametrize("fold_choice", [{}, {"folds": "5", "exclude_fold": "0"}])
def test_films_of_another_folder_than_the_training_one_are_not_counted(
    tmp_path: Path, fold_choice: dict[str, str]
) -> None:
    """Trained on a 20-patient folder, evaluated on 5 other patients: the training selection
    was recomputed from the evaluated folder, which claimed 10 (or 8) films were trained on
    (review)."""
    train = _mias_folder(tmp_path / "train", range(1, 41))
    held_out = load_mias(_mias_folder(tmp_path / "held-out", range(41, 51)))
    mias = {"kind": "mias", "path": str(train), **fold_choice}
    assert trained_films({"train": [mias]}, held_out) == {}


def test_trained_films_of_a_full_copy_are_counted_in_a_subset(tmp_path: Path) -> None:
    """Trained on a full copy without fold 0, evaluated on fold 0 of a copy holding fewer
    patients: folds are drawn over the patients a folder holds, so the subset's fold 0 holds
    films of the training's folds 1-4, which went unreported (review)."""
    full = _mias_folder(tmp_path / "full", range(1, 51))
    options = {"path": str(full), "folds": "5", "exclude_fold": "0"}
    trained = {r.image_id for r in select_mias(load_mias(full), options)}
    evaluated = select_fold(load_mias(_mias_folder(tmp_path / "sub", range(11, 51))), fold=0)
    expected = len(trained & {r.image_id for r in evaluated})
    assert expected > 0
    assert trained_films({"train": [{"kind": "mias", **options}]}, evaluated) == {
        f"mias:path={full},folds=5,exclude_fold=0": expected
    }


@pytest.mark.parametrize("where", ["missing", "no Info.txt", "no pictures", "no path", "fold=x"])
def test_training_films_that_cannot_be_read_here_are_unknown(tmp_path: Path, where: str) -> None:
    """A moved training folder (or one on another machine) says nothing about the evaluated
    folder's films: the overlap is unknown, not guessed from the evaluated folder's folds."""
    evaluated = load_mias(_mias_folder(tmp_path / "evaluated", range(1, 11)))
    folder = tmp_path / "train"
    if where == "no Info.txt":
        folder.mkdir()
    elif where == "no pictures":
        _mias_folder(folder, range(1, 11))
        for picture in folder.glob("*.png"):
            picture.unlink()
    elif where == "fold=x":
        _mias_folder(folder, range(1, 11))
    mias = {"kind": "mias", "path": str(folder), "folds": "5", "exclude_fold": "0"}
    if where == "no path":
        del mias["path"]
    if where == "fold=x":
        mias["exclude_fold"] = "x"
    source = "mias:" + ",".join(f"{k}={v}" for k, v in mias.items() if k != "kind")
    assert trained_films({"train": [mias]}, evaluated) == {source: None}


def test_eval_breasts_warns_when_the_training_overlap_is_unknown(
    tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A component whose training folder is gone is named in a warning, beside the counts of
    the components whose folders are here."""
    evaluated = load_mias(_mias_folder(tmp_path / "evaluated", range(1, 11)))
    known = _mias_folder(tmp_path / "train", range(1, 21))
    gone = {"kind": "mias", "path": str(tmp_path / "moved"), "exclude_fold": "0"}
    manifest = replace(
        read_manifest(tiny_bundle),
        training_data={"train": [{"kind": "mias", "path": str(known)}]},
        malignancy={"training_data": {"train": [gone]}},
    )
    with caplog.at_level("WARNING", logger="mammocad.eval.mias_breasts"):
        trained, unknown = training_overlap(manifest, evaluated)
    source = f"mias:path={tmp_path / 'moved'},exclude_fold=0"
    assert trained == {("detector", f"mias:path={known}"): 10}
    assert unknown == [("lesion classifier", source)]
    message = " ".join(caplog.text.split())
    assert (
        f"whether the 10 films evaluated are in the lesion classifier's training data ({source})"
        in message
    )
    assert "evaluate where the training folder is" in message


def test_validation_films_of_another_folder_are_compared_by_name(tmp_path: Path) -> None:
    """--val on a subset copy of the films, --data on the full copy: the specs were compared
    only when their paths were one folder, so the subset's fold 0, mostly films of the full
    copy's folds 1-4, validated the training (review)."""
    full = _mias_folder(tmp_path / "full", range(1, 51))
    sub = _mias_folder(tmp_path / "sub", range(11, 51))
    trained = parse_spec(f"mias:path={full},exclude_fold=0")
    with pytest.raises(ValueError, match=r"shares [0-9]+ films.*take --val and --data from one"):
        refuse_shared_data([trained], [parse_spec(f"mias:path={sub},fold=0")])
    other = _mias_folder(tmp_path / "other", range(51, 61))
    refuse_shared_data([trained], [parse_spec(f"mias:path={other}")])
    with pytest.raises(ValueError, match=r"shares [0-9]+ films.*: validate on fold=K"):
        refuse_shared_data([trained], [parse_spec(f"mias:path={full},fold=1")])


def test_every_component_that_trained_on_mini_mias_is_compared(tiny_bundle: Path) -> None:
    """The lesion classifier runs at inference and is trained on mini-MIAS folds too; the
    warning read only the detector's training data (review)."""
    mias = {"train": [{"kind": "mias", "path": "p", "exclude_fold": "0"}]}
    manifest = replace(
        read_manifest(tiny_bundle),
        training_data={"train": [{"kind": "phantom", "n": "2"}]},
        malignancy={"training_data": mias},
        risk={"training_data": {"train": []}},
    )
    found = training_data_of(manifest)
    assert list(found) == ["detector", "lesion classifier", "risk model"]
    assert found["lesion classifier"] == mias


def test_eval_breasts_warns_about_training_films_and_takes_the_fold_seed(
    shared_data: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    source = shared_data / "mini-mias"
    subset = tmp_path / "mias"  # two patients, links to the shared films (licence)
    subset.mkdir()
    refs = ("mdb005", "mdb006", "mdb023", "mdb024")
    rows = [
        line
        for line in (source / "Info.txt").read_text(encoding="ascii").splitlines()
        if line.split()[:1] and line.split()[0] in refs
    ]
    (subset / "Info.txt").write_text("\n".join(rows) + "\n", encoding="ascii")
    for ref in refs:
        (subset / f"{ref}.png").symlink_to(source / f"{ref}.png")
    model = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["training_data"] = {"train": [{"kind": "mias", "path": str(source)}]}
    (model / "manifest.json").write_text(json.dumps(manifest))

    result = CliRunner().invoke(
        app,
        ["eval", "breasts", "--model", str(model), "--mias", str(subset), "--out",
         str(tmp_path / "out"), "--bootstrap", "5", "--threads", "1", "--fold-seed", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 of the 4 films evaluated are in the detector's training data" in " ".join(
        result.output.split()
    )
