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
from mammocad.datasets.spec import parse_spec, refuse_shared_data
from mammocad.detect.bundle import read_manifest
from mammocad.eval.mias_breasts import select_fold, trained_films, training_data_of

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
    records = load_mias(shared_data / "mini-mias")
    mias = {"kind": "mias", "path": "elsewhere", "folds": "5", "exclude_fold": "0"}
    training = {"train": [{"kind": "phantom", "n": "2", "seed": "1"}, mias]}
    assert trained_films(training, records, select_fold(records, fold=0)) == {}
    fold1 = select_fold(records, fold=1)
    assert trained_films(training, records, fold1) == {
        "mias:path=elsewhere,folds=5,exclude_fold=0": len(fold1)
    }
    # another fold seed: fold 0 of seed 1 is mostly films the seed-0 training saw
    assert trained_films(training, records, select_fold(records, fold=0, fold_seed=1))


@pytest.mark.parametrize(
    "training", [None, [], "mias", {"train": "mias"}, {"train": [{"kind": "mias", "fold": "x"}]}]
)
def test_training_data_of_another_shape_names_no_films(shared_data: Path, training: object) -> None:
    """Older or hand-edited manifests: no traceback, nothing to compare (review)."""
    records = load_mias(shared_data / "mini-mias")
    assert trained_films(training, records, records) == {}


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
