"""Review of study assembly: CC–MLO linking when a breast has more than one image of a side.

A technical repeat (two CC views of one breast, common in screening) or an extra view (XCCL
beside the CC, ML beside the MLO) gives one breast several CC-like or MLO-like images. Each is
a picture of the same lesions, so each CC-like image is matched with each MLO-like image on its
own: pooling the findings of both CC images into one one-to-one assignment let one lesion of
the repeated CC take both MLO findings (one per copy) and left the other lesion unlinked.
"""

from __future__ import annotations

from types import SimpleNamespace

from mammocad.detect.predict import ImagePrediction
from mammocad.fuse import PlacedFinding, link_breast
from mammocad.fuse.apply import Fuser
from mammocad.structures import (
    Finding,
    FindingLabel,
    Image,
    ImageQuality,
    Laterality,
    Study,
    ViewPosition,
)

CC, MLO, ML = ViewPosition.CC, ViewPosition.MLO, ViewPosition.ML


def _placed(name: str, image: str, view: ViewPosition, distance_mm: float) -> PlacedFinding:
    finding = Finding(
        id=name,
        sop_instance_uid=image,
        label=FindingLabel.MASS,
        score=0.9,
        malignancy_probability=0.5,
        box=(0.0, 0.0, 1.0, 1.0),
    )
    return PlacedFinding(finding=finding, view=view, nipple_distance_mm=distance_mm, size_mm=10.0)


def _breast() -> tuple[list[PlacedFinding], list[PlacedFinding]]:
    """Lesion a at 40 mm and b at 60 mm from the nipple on the CC and on its repeat; on the
    MLO x (52 mm) is a, y (80 mm) is b: alone, the CC links a–x and b–y (a–y is 40 mm apart,
    ruled out); pooled, b–x plus the copy's b–y costs less than a–x plus b–y."""
    cc = [
        _placed("a", "cc-1", CC, 40.0),
        _placed("b", "cc-1", CC, 60.0),
        _placed("a-repeat", "cc-2", CC, 40.0),
        _placed("b-repeat", "cc-2", CC, 60.0),
    ]
    mlo = [_placed("x", "mlo-1", MLO, 52.0), _placed("y", "mlo-1", MLO, 80.0)]
    return cc, mlo


def test_a_repeated_cc_links_each_lesion_with_its_own_mlo_partner() -> None:
    cc, mlo = _breast()
    pairs = link_breast(cc, mlo)
    assert sorted(pairs) == [("a", "x"), ("a-repeat", "x"), ("b", "y"), ("b-repeat", "y")]
    links = {item.finding.id: item.finding.linked_finding_ids for item in cc + mlo}
    # one lesion is never linked to two different lesions of the other view
    assert links["b"] == ["y"] and links["b-repeat"] == ["y"]
    assert links["a"] == ["x"] and links["a-repeat"] == ["x"]
    assert sorted(links["x"]) == ["a", "a-repeat"] and sorted(links["y"]) == ["b", "b-repeat"]


def test_an_extra_lateral_view_is_linked_beside_the_mlo() -> None:
    cc = [_placed("a", "cc-1", CC, 40.0)]
    mlo = [_placed("x", "mlo-1", MLO, 44.0), _placed("x-ml", "ml-1", ML, 43.0)]
    assert sorted(link_breast(cc, mlo)) == [("a", "x"), ("a", "x-ml")]


def _image(key: str, view: ViewPosition) -> Image:
    return Image(
        source=f"{key}.dcm",
        sop_instance_uid=key,
        laterality=Laterality.R,
        view=view,
        rows=200,
        columns=200,
        pixel_spacing_mm=(1.0, 1.0),
    )


def _found(name: str, image: str, distance_mm: float) -> Finding:
    """A 10 mm mass whose centre lies ``distance_mm`` right of the nipple at (0, 100)."""
    box = (distance_mm - 5.0, 95.0, distance_mm + 5.0, 105.0)
    return Finding(
        id=name,
        sop_instance_uid=image,
        label=FindingLabel.MASS,
        score=0.9,
        malignancy_probability=0.5,
        box=box,
    )


def test_the_fuse_stage_and_the_risk_models_links_pair_per_image() -> None:
    """Through ``Fuser.fuse`` (links written into the result) and ``Fuser.links_from`` (the
    links the risk model counts), a study whose right CC was repeated."""
    study = Study(
        study_instance_uid="1.2.3",
        images=[_image("cc-1", CC), _image("cc-2", CC), _image("mlo-1", MLO)],
    )
    layout = {"cc-1": [("a", 40.0), ("b", 60.0)], "cc-2": [("a-repeat", 40.0), ("b-repeat", 60.0)]}
    layout["mlo-1"] = [("x", 52.0), ("y", 80.0)]
    predictions = {
        key: ImagePrediction(image_key=key, findings=[_found(n, key, d) for n, d in items])
        for key, items in layout.items()
    }
    preprocessed = {
        image.key: SimpleNamespace(
            image=image,
            nipple=(0.0, 100.0),
            breast_box=(0.0, 0.0, 200.0, 200.0),
            chest_wall_on_right=True,
            quality=ImageQuality(score=1.0, acceptable=True),
        )
        for image in study.images
    }
    expected = [("a", "x"), ("a-repeat", "x"), ("b", "y"), ("b-repeat", "y")]
    fuser = Fuser()
    links = fuser.links_from(study, preprocessed, predictions, keep=lambda _: True)
    assert sorted(links) == expected
    assert sorted(fuser.fuse(study, preprocessed, predictions).links) == expected
    by_id = {f.id: f for prediction in predictions.values() for f in prediction.findings}
    assert by_id["b"].linked_finding_ids == ["y"]
    assert sorted(by_id["x"].linked_finding_ids) == ["a", "a-repeat"]
