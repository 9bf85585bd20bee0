"""Model bundles: one folder with weights, ``manifest.json`` and ``MODEL_CARD.md``.

::

    models/<name>/
      weights.pt        state_dict (float16 by default), written by torch.save
      manifest.json     name, version, sha256 of weights.pt, classes, detector config, input
                        size, preprocessing parameters, thresholds, training data, metrics
      MODEL_CARD.md     data, metrics with confidence intervals, intended use
      calibration.json  optional: the risk calibration a site fitted (mammocad.risk.calibration)
      fusion.pt         optional: cross-view fusion weights (mammocad.fuse), described by the
                        manifest's ``fusion`` section (absent in bundles without fusion)
      risk.json         optional: breast-level risk model (mammocad.risk), described by the
                        manifest's ``risk`` section
Weights are saved as a plain ``state_dict`` and loaded with ``torch.load(weights_only=True)``:
no pickled code runs on load. The sha256 in the manifest is checked before loading, so a
truncated copy or a swapped file fails loudly instead of predicting garbage.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

import mammocad
from mammocad.detect.config import DetectorConfig
from mammocad.detect.model import MammoDetector, build_detector
from mammocad.errors import ModelBundleError

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
MANIFEST_FILE = "manifest.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class BundleManifest:
    """The contents of ``manifest.json``.

    ``metrics`` maps a metric name to ``{"value", "ci_low", "ci_high"}`` (CI keys optional),
    as :meth:`mammocad.eval.FrocReport.to_metrics` returns. ``thresholds`` are operating
    points chosen on validation data (e.g. ``{"finding_score": 0.3}``). ``fusion`` is the
    optional cross-view fusion section (:mod:`mammocad.fuse.bundle`), ``risk`` the optional
    risk-model section (:mod:`mammocad.risk.bundle`), ``malignancy`` the optional lesion
    classifier section (:mod:`mammocad.malignancy.bundle`); empty means none, and it is then
    left out of ``manifest.json``, so older readers see the same file.
    """

    name: str
    version: str
    sha256: str
    detector: DetectorConfig
    preprocessing: dict[str, Any]
    weights_file: str = WEIGHTS_FILE
    weights_dtype: str = "float16"
    thresholds: dict[str, float] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    intended_use: str = "Research use only. Not for clinical use."
    created: str = ""
    mammocad_version: str = ""
    format_version: int = FORMAT_VERSION
    fusion: dict[str, Any] = field(default_factory=dict)
    risk: dict[str, Any] = field(default_factory=dict)
    malignancy: dict[str, Any] = field(default_factory=dict)
    ranker: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.detector.classes

    @property
    def input_size(self) -> tuple[int, int]:
        return self.detector.input_size

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "mammocad_version": self.mammocad_version,
            "weights_file": self.weights_file,
            "weights_dtype": self.weights_dtype,
            "sha256": self.sha256,
            "classes": list(self.detector.classes),
            "landmark": self.detector.landmark,
            "input_size": list(self.detector.input_size),
            "detector": self.detector.to_dict(),
            "preprocessing": self.preprocessing,
            "thresholds": self.thresholds,
            "training_data": self.training_data,
            "metrics": self.metrics,
            "intended_use": self.intended_use,
        }
        if self.fusion:
            data["fusion"] = self.fusion
        if self.risk:
            data["risk"] = self.risk
        if self.malignancy:
            data["malignancy"] = self.malignancy
        if self.ranker:
            data["ranker"] = self.ranker
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BundleManifest:
        if not isinstance(data, dict):
            raise ModelBundleError(
                f"manifest.json holds {type(data).__name__}, not an object; re-export the bundle"
            )
        version = data.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise ModelBundleError(
                f"manifest format {version} is newer than this mammocad's {FORMAT_VERSION}: the "
                "bundle was written by a newer mammocad; upgrade mammocad to load it"
            )
        if version != FORMAT_VERSION:
            raise ModelBundleError(
                f"manifest format {version!r} is not {FORMAT_VERSION}: use the mammocad release "
                "that wrote this bundle, or re-export it"
            )
        _check_sections(data)
        try:
            manifest = cls(
                name=data["name"],
                version=data["version"],
                sha256=data["sha256"],
                detector=DetectorConfig.from_dict(data["detector"]),
                preprocessing=data["preprocessing"],
                weights_file=data.get("weights_file", WEIGHTS_FILE),
                weights_dtype=data.get("weights_dtype", "float16"),
                thresholds=data.get("thresholds", {}),
                training_data=data.get("training_data", {}),
                metrics=data.get("metrics", {}),
                intended_use=data.get("intended_use", ""),
                created=data.get("created", ""),
                mammocad_version=data.get("mammocad_version", ""),
                fusion=dict(data.get("fusion") or {}),
                risk=dict(data.get("risk") or {}),
                malignancy=dict(data.get("malignancy") or {}),
                ranker=dict(data.get("ranker") or {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelBundleError(
                f"manifest.json is incomplete or invalid ({error}); re-export the bundle"
            ) from error
        # the top-level copies readers see must be the detector's, which the weights fit
        config = manifest.detector
        for key, value in (
            ("classes", list(config.classes)),
            ("landmark", config.landmark),
            ("input_size", list(config.input_size)),
        ):
            if key in data and data[key] != value:
                raise ModelBundleError(
                    f"manifest.json says {key} {data[key]!r} but its detector section, which "
                    f"the weights were trained with, {value!r}; re-export the bundle"
                )
        return manifest


#: the manifest entries readers use as JSON objects (``.get``, ``.items``): any other value
#: would pass the dataclass and fail later, far from the file, with an AttributeError
_REQUIRED_SECTIONS = ("detector", "preprocessing")
_OPTIONAL_SECTIONS = ("thresholds", "training_data", "metrics")
_ADDED_SECTIONS = ("fusion", "risk", "malignancy", "ranker")  # null is none, as when absent


def _check_sections(data: dict[str, Any]) -> None:
    """ModelBundleError naming the first section of ``data`` that is present but not an
    object (a missing required one is reported as incomplete by the caller)."""
    for key in (*_REQUIRED_SECTIONS, *_OPTIONAL_SECTIONS, *_ADDED_SECTIONS):
        if key not in data or isinstance(data[key], dict):
            continue
        if key in _ADDED_SECTIONS and data[key] is None:
            continue
        raise ModelBundleError(
            f"manifest section {key!r} is {json.dumps(data[key])[:40]}, not an object: "
            + ("write {} for none, or " if key in _OPTIONAL_SECTIONS else "")
            + "re-export the bundle"
        )


@dataclass(frozen=True, kw_only=True)
class LoadedBundle:
    manifest: BundleManifest
    model: MammoDetector  # in eval mode, float32, on the requested device
    path: Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(
    model: MammoDetector,
    path: str | Path,
    *,
    name: str,
    version: str,
    preprocessing: dict[str, Any],
    thresholds: dict[str, float] | None = None,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, dict[str, float]] | None = None,
    intended_use: str = "Research use only. Not for clinical use.",
    weights_dtype: torch.dtype = torch.float16,
) -> BundleManifest:
    """Write ``model`` as a bundle folder at ``path`` (created; existing files replaced).

    ``preprocessing`` is the preprocess module's ``PreprocessParams.to_dict()`` that made the
    training inputs; inference must use the same parameters.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    weights = _write_weights(model, folder / WEIGHTS_FILE, weights_dtype)
    manifest = BundleManifest(
        name=name,
        version=version,
        sha256=sha256_of(weights),
        detector=model.config,
        preprocessing=dict(preprocessing),
        weights_dtype=str(weights_dtype).removeprefix("torch."),
        thresholds=dict(thresholds or {}),
        training_data=dict(training_data or {}),
        metrics=dict(metrics or {}),
        intended_use=intended_use,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        mammocad_version=mammocad.__version__,
    )
    write_manifest(folder, manifest)
    write_model_card(folder, manifest)
    return manifest


def write_manifest(path: str | Path, manifest: BundleManifest) -> Path:
    """Write ``manifest.json`` into the bundle folder ``path`` (the weights are not touched:
    a manifest changed after training, e.g. new thresholds, keeps its sha256)."""
    out = Path(path) / MANIFEST_FILE
    out.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n", "utf-8")
    return out


def _write_weights(model: MammoDetector, weights: Path, dtype: torch.dtype) -> Path:
    """Floating-point tensors as ``dtype``, others as they are; atomic, like checkpoints."""
    state = {
        key: value.detach().to("cpu", dtype) if value.is_floating_point() else value.cpu()
        for key, value in model.state_dict().items()
    }
    temporary = weights.with_name(weights.name + ".partial")
    torch.save(state, temporary)
    temporary.replace(weights)
    return weights


def save_module_state(module: torch.nn.Module, weights: Path) -> str:
    """Write ``module``'s state dict as float32 to ``weights`` atomically; its sha256.

    For the optional models a bundle carries beside the detector (fusion, lesion classifier)."""
    partial = weights.with_name(weights.name + ".partial")
    torch.save({k: v.detach().cpu().float() for k, v in module.state_dict().items()}, partial)
    partial.replace(weights)
    return sha256_of(weights)


def verified_file(path: Path, sha256: object) -> Path:
    """``path``, after checking it exists and has the ``sha256`` its manifest records.

    Raises:
        ModelBundleError: the file is missing or altered.
    """
    if not path.is_file() or sha256_of(path) != sha256:
        raise ModelBundleError(
            f"{path} is missing or does not match its sha256 in manifest.json: copy the "
            "whole bundle folder again"
        )
    return path


def load_module_state(module: torch.nn.Module, weights: Path, sha256: str) -> None:
    """Load ``weights`` into ``module`` after checking their sha256 (``weights_only``).

    Raises:
        ModelBundleError: the file is missing, does not match, or does not fit ``module``.
    """
    verified_file(weights, sha256)
    try:
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except RuntimeError as error:
        raise ModelBundleError(f"{weights} does not fit its configuration ({error})") from error


def bundle_inside(path: str | Path) -> Path | None:
    """The bundle folder one level below ``path`` (a training run's ``--out`` holds its bundle
    in a subfolder), the first by name when there are several; ``None`` without one."""
    inner = sorted(p.parent for p in Path(path).glob(f"*/{MANIFEST_FILE}") if p.is_file())
    return inner[0] if inner else None


def read_manifest(path: str | Path) -> BundleManifest:
    """The manifest of the bundle folder ``path`` (weights neither read nor checked)."""
    manifest_path = Path(path) / MANIFEST_FILE
    if not manifest_path.is_file():
        inner = bundle_inside(path)
        hint = f"; {inner} holds one: pass that folder" if inner else ""
        raise ModelBundleError(
            f"{manifest_path} not found: {path} is not a model bundle folder "
            f"(expected weights.pt, manifest.json and MODEL_CARD.md){hint}"
        )
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelBundleError(f"{manifest_path} is not valid JSON ({error}); re-export") from error
    try:
        return BundleManifest.from_dict(data)
    except ModelBundleError as error:  # say which bundle's manifest
        raise ModelBundleError(f"{manifest_path}: {error}") from error


def load_bundle(path: str | Path, *, device: str | torch.device = "cpu") -> LoadedBundle:
    """Check and load a bundle; the model comes back float32 in eval mode on ``device``."""
    folder = Path(path)
    manifest = read_manifest(folder)
    weights = folder / manifest.weights_file
    if not weights.is_file():
        raise ModelBundleError(f"{weights} is missing: copy the whole bundle folder")
    actual = sha256_of(weights)
    if actual != manifest.sha256:
        raise ModelBundleError(
            f"{weights} does not match its manifest (sha256 {actual[:12]}… instead of "
            f"{manifest.sha256[:12]}…): the file is corrupt or from another bundle; copy the "
            "bundle again"
        )
    model = build_detector(manifest.detector)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)  # copies into the float32 parameters
    except RuntimeError as error:
        raise ModelBundleError(
            f"{weights} does not fit the detector in its manifest ({error}); re-export the bundle"
        ) from error
    return LoadedBundle(manifest=manifest, model=model.to(device).eval(), path=folder)


def write_model_card(
    path: str | Path, manifest: BundleManifest, *, extra: Sequence[str] = ()
) -> Path:
    """Write ``MODEL_CARD.md`` into the bundle folder ``path`` from its manifest; ``extra``
    Markdown lines (e.g. a calibration section) go before the preprocessing section."""
    lines = [
        f"# {manifest.name} {manifest.version}",
        "",
        "## Intended use",
        "",
        manifest.intended_use or "Research use only. Not for clinical use.",
        "",
        "## Model",
        "",
        *_model_lines(manifest),
        "",
        "## Training data",
        "",
        _inline(manifest.training_data) or "Not recorded.",
        "",
        "## Metrics",
        "",
        *_metric_table(manifest.metrics),
        "",
        *extra,
        "## Preprocessing",
        "",
        "Inference must use exactly these preprocessing parameters (recorded from training):",
        "",
        "```json",
        json.dumps(manifest.preprocessing, indent=2, sort_keys=True),
        "```",
        "",
        f"Created {manifest.created} with mammocad {manifest.mammocad_version}.",
        "",
    ]
    out = Path(path) / MODEL_CARD_FILE
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def set_card_section(path: str | Path, title: str, lines: Sequence[str]) -> Path:
    """Write the section ``## title`` of the bundle's ``MODEL_CARD.md`` with the body
    ``lines``: in place where the card has it (the other sections are kept, in order), else
    at the end. The optional parts of a bundle (classifier, fusion, risk) each own one."""
    card = Path(path) / MODEL_CARD_FILE
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    head, found, rest = text.partition(f"\n## {title}\n")
    following = rest.partition("\n## ")[2] if found else ""
    body = "\n".join(["", f"## {title}", "", *lines, ""])
    tail = f"\n## {following}" if following else ""
    card.write_text(head.rstrip("\n") + "\n" + body + tail, encoding="utf-8")
    return card


def _model_lines(manifest: BundleManifest) -> list[str]:
    config = manifest.detector
    rows, cols = config.input_size
    return [
        f"- Faster R-CNN + FPN, backbone `{config.backbone}` (GroupNorm, trained from scratch),",
        f"  {config.in_channels}-channel input of {rows}×{cols} pixels (rows × columns), chest"
        " wall on the left.",
        f"- Lesion classes: {', '.join(config.lesion_classes)}; `{config.landmark}` is a landmark"
        " and hard negative, never a finding.",
        (
            "- Malignancy: the second-stage lesion classifier (`malignancy.pt`, section below),"
            " P(malignant) per finding; the detector's RoI head is not used."
            if manifest.malignancy
            else "- Malignancy: a head on the RoI features, P(malignant) per finding."
        ),
        f"- Weights: `{manifest.weights_file}` ({manifest.weights_dtype}), sha256"
        f" `{manifest.sha256}`.",
        f"- Thresholds: {_inline(manifest.thresholds) or 'none recorded'}.",
    ]


def _metric_table(metrics: dict[str, dict[str, float]]) -> list[str]:
    if not metrics:
        return ["No metrics recorded."]
    rows = ["| metric | value | 95% CI |", "|---|---|---|"]
    for name, entry in metrics.items():
        low, high = entry.get("ci_low"), entry.get("ci_high")
        has_ci = low is not None and high is not None and low == low and high == high  # not NaN
        ci = f"{low:.3f}–{high:.3f}" if has_ci else "—"
        rows.append(f"| {name} | {entry['value']:.3f} | {ci} |")
    return rows


def _inline(values: dict[str, Any]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in values.items())


def write_bundle_copy(source: str | Path, target: str | Path, fill: Callable[[Path], None]) -> Path:
    """Copy the bundle folder ``source`` to the new folder ``target``, ``fill(copy)`` adding to
    or changing the copy first (calibration, a ranker, the manifest). The copy is written as
    ``TARGET.partial``, its weights are checked against the source manifest's sha256, and only
    then it takes the final name, so a half-written bundle never carries it. The source is
    never modified."""
    source, target = Path(source), Path(target)
    manifest = read_manifest(source)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(source, partial)
        fill(partial)
        if sha256_of(partial / manifest.weights_file) != manifest.sha256:
            raise ModelBundleError(f"copying the weights to {partial} corrupted them; try again")
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
