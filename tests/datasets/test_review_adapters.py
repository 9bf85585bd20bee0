"""Review of the dataset adapters against the real layouts (../shared/data): each test failed on
the code before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mammocad.datasets.spec import check_local_data, parse_spec


def test_a_mias_folder_with_info_txt_but_none_of_its_films_is_refused(
    shared_data: Path, tmp_path: Path
) -> None:
    # the real Info.txt beside no picture (the films kept in a subfolder, as some copies of
    # the database do): the spec passed the check, and training read no mini-MIAS film at all
    # without a word (evaluation said only that the specs produced no image)
    folder = tmp_path / "mias"
    (folder / "all-mias").mkdir(parents=True)
    shutil.copy(shared_data / "mini-mias" / "Info.txt", folder / "Info.txt")
    text = f"mias:path={folder}"
    with pytest.raises(ValueError, match=r"holds none of the 242 films its Info\.txt lists"):
        check_local_data(parse_spec(text), text)
    # the real folder passes
    check_local_data(parse_spec(f"mias:path={shared_data / 'mini-mias'}"))
