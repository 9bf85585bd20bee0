"""The learned cross-view attention module (small: ~68k parameters for 512-d RoI features).

Per breast, every finding (or fusion candidate) of either view becomes a token:

* its RoI representation ``float[D]`` (layer-normalised, projected to ``model_dim``) plus
* :data:`GEOMETRY_FEATURES` — nipple distance, size, detection score, the detector's
  malignancy logit and the view (CC or MLO) — projected to ``model_dim`` and added.

Each token then attends (multi-head attention) over the tokens of the OTHER view of the same
breast and over a learned "no finding" token that is always there, so a breast with findings
in one view only — or none at all — is an ordinary input, not a special case. A residual MLP
follows. Two heads read the result:

* **finding logit** ``ℓ_i = base_i + δ_i``: ``base_i`` is the logit of the detector's own
  contribution ``score · malignancy``, ``δ_i`` the learned correction (initialised to 0, so an
  untrained module reproduces the detector's per-finding numbers);
* **breast logit**, so that the breast label alone (binary cross-entropy) trains the finding
  logits, by ``pooling``:

  - ``noisy_or`` (default): ``P = 1 − (1 − σ(ℓ_∅)) · Π_reported (1 − σ(ℓ_i))`` over the
    *reported* findings — the same noisy-OR as the single-view aggregate
    (:func:`mammocad.risk.aggregate.noisy_or`), with a learned empty-breast term ``ℓ_∅``
    starting near 0 — so an untrained module reproduces the single-view breast probability
    and training can only learn a correction to it. The lower-scoring fusion candidates are
    context (keys of the cross-view attention: "is there something at this nipple distance in
    the other view?") but never evidence themselves (noisy-OR MIL: Zhang, Platt & Viola,
    NIPS 2005);
  - ``attention`` (bundles written before ``noisy_or``): attention-MIL pooling (Ilse et al.,
    ICML 2018) of all tokens, ``Σ_i w_i ℓ_i + w_∅ ℓ_∅`` with ``w = softmax(gate(h_i), g_∅)``.
    It starts from no aggregate at all and, trained on a few hundred phantom breasts, ended
    below the single-view noisy-OR it was meant to improve (docs/fusion.md).

``cross_view=False`` lets every token see only the "no finding" token: the same module
without fusion, the single-view ablation.

Shapes (``B`` breasts, ``N`` tokens, padded): ``features float32[B, N, D]``,
``geometry float32[B, N, G]``, ``is_cc bool[B, N]``, ``valid bool[B, N]``,
``reported bool[B, N]``, ``base_logit float32[B, N]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional

GEOMETRY_FEATURES = (
    "nipple_distance_dm",  # mm / 100
    "size_cm",  # mm / 10
    "score",
    "detector_malignancy_logit_div4",
    "is_cc",
    "is_mlo",
)

Pooling = Literal["noisy_or", "attention"]
#: initial empty-breast logit of the noisy-OR pooling: σ(−7) ≈ 0.001, next to nothing
EMPTY_LOGIT_NOISY_OR = -7.0


@dataclass(frozen=True, kw_only=True)
class FusionConfig:
    """Sizes of :class:`CrossViewFusion`; ``feature_dim`` is the detector's ``box_head_dim``."""

    feature_dim: int
    model_dim: int = 64
    heads: int = 4
    dropout: float = 0.1
    cross_view: bool = True
    pooling: Pooling = "noisy_or"

    def __post_init__(self) -> None:
        if self.feature_dim < 1 or self.model_dim < 1:
            raise ValueError("feature_dim and model_dim must be positive")
        if self.pooling not in ("noisy_or", "attention"):
            raise ValueError(f"pooling must be noisy_or or attention, got {self.pooling!r}")
        if self.model_dim % self.heads:
            raise ValueError(f"model_dim {self.model_dim} is not divisible by {self.heads} heads")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FusionConfig:
        # manifests written before the noisy-OR pooling existed hold attention-pooled weights
        return cls(**{"pooling": "attention", **data})


@dataclass(frozen=True, kw_only=True)
class FusionBatch:
    """Padded breasts (module docstring for shapes); build it with
    :func:`mammocad.fuse.data.collate`."""

    features: Tensor
    geometry: Tensor
    is_cc: Tensor
    valid: Tensor
    reported: Tensor
    base_logit: Tensor

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclass(frozen=True, kw_only=True)
class FusionOutput:
    """``finding_logits float32[B, N]`` (padding rows meaningless), ``breast_logits
    float32[B]``, ``weights float32[B, N + 1]`` of the pooling (last column: empty token;
    with ``noisy_or`` each term's share of ``−log(1 − P)``, 0 for tokens not pooled)."""

    finding_logits: Tensor
    breast_logits: Tensor
    weights: Tensor


class CrossViewFusion(nn.Module):
    """Cross-view attention over one breast's findings (module docstring)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        d = config.model_dim
        self.norm_features = nn.LayerNorm(config.feature_dim)
        self.embed_features = nn.Linear(config.feature_dim, d)
        self.embed_geometry = nn.Linear(len(GEOMETRY_FEATURES), d)
        self.no_finding = nn.Parameter(torch.zeros(1, 1, d))
        self.attention = nn.MultiheadAttention(
            d, config.heads, dropout=config.dropout, batch_first=True
        )
        self.norm_attended = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(2 * d, d)
        )
        self.norm_out = nn.LayerNorm(d)
        self.finding_head = nn.Linear(d, 1)
        self.gate = nn.Linear(d, 1)
        self.empty_gate = nn.Parameter(torch.zeros(()))
        empty = EMPTY_LOGIT_NOISY_OR if config.pooling == "noisy_or" else -2.0
        self.empty_logit = nn.Parameter(torch.tensor(empty))
        nn.init.zeros_(self.finding_head.weight)
        nn.init.zeros_(self.finding_head.bias)
        nn.init.normal_(self.no_finding, std=0.02)

    def forward(self, batch: FusionBatch) -> FusionOutput:
        tokens = self.embed_features(self.norm_features(batch.features))
        tokens = torch.relu(tokens + self.embed_geometry(batch.geometry))
        size = tokens.shape[0]
        keys = torch.cat([self.no_finding.expand(size, 1, -1), tokens], dim=1)
        attended, _ = self.attention(
            tokens, keys, keys, attn_mask=self._blocked(batch), need_weights=False
        )
        hidden = self.norm_attended(tokens + attended)
        hidden = self.norm_out(hidden + self.mlp(hidden))
        finding_logits = batch.base_logit + self.finding_head(hidden).squeeze(-1)
        if self.config.pooling == "noisy_or":
            return self._noisy_or(batch, finding_logits)
        gates = self.gate(hidden).squeeze(-1).masked_fill(~batch.valid, float("-inf"))
        gates = torch.cat([gates, self.empty_gate.expand(size, 1)], dim=1)
        weights = torch.softmax(gates, dim=1)
        logits = torch.cat([finding_logits, self.empty_logit.expand(size, 1)], dim=1)
        logits = logits.masked_fill(~_with_empty(batch.valid), 0.0)
        breast_logits = (weights * logits).sum(dim=1)
        return FusionOutput(
            finding_logits=finding_logits, breast_logits=breast_logits, weights=weights
        )

    def _noisy_or(self, batch: FusionBatch, finding_logits: Tensor) -> FusionOutput:
        """``logit(1 − Π(1 − σ(ℓ)))`` over the reported findings and the empty term, from
        ``S = −log Π(1 − σ(ℓ)) = Σ softplus(ℓ)``: ``logit = log(expm1(S))`` (≈ S for large S)."""
        size = finding_logits.shape[0]
        pooled = batch.valid & batch.reported
        terms = functional.softplus(finding_logits).masked_fill(~pooled, 0.0)
        terms = torch.cat([terms, functional.softplus(self.empty_logit).expand(size, 1)], dim=1)
        total = terms.sum(dim=1)
        # both branches finite (the clamps), so the unused one has no NaN gradient
        small = torch.log(torch.expm1(total.clamp(1e-12, 20.0)))
        breast_logits = torch.where(total > 20.0, total, small)
        return FusionOutput(
            finding_logits=finding_logits,
            breast_logits=breast_logits,
            weights=terms / total.unsqueeze(1),
        )

    def _blocked(self, batch: FusionBatch) -> Tensor:
        """``bool[B·heads, N, N+1]``: True where a token may NOT attend. Column 0 (the "no
        finding" token) is always open; other columns only for valid tokens of the other
        view (none at all without ``cross_view``)."""
        size, count = batch.valid.shape
        if self.config.cross_view:
            other_view = batch.is_cc.unsqueeze(2) != batch.is_cc.unsqueeze(1)
            allowed = other_view & batch.valid.unsqueeze(1)
        else:
            allowed = batch.valid.new_zeros((size, count, count))
        open_column = allowed.new_ones((size, count, 1))
        blocked = ~torch.cat([open_column, allowed], dim=2)
        return blocked.repeat_interleave(self.config.heads, dim=0)


def _with_empty(valid: Tensor) -> Tensor:
    return torch.cat([valid, valid.new_ones((valid.shape[0], 1))], dim=1)
