"""Two-view agreement: how strongly the CC and the MLO view of one breast show the same lesion.

A radiologist trusts a density seen on both projections, at the same distance from the nipple,
far more than one seen on a single view: a false positive of one view (overlapping glandular
tissue) rarely has a partner at the right depth on the other. The risk model reads this as one
number per breast (``two_view_contribution``, docs/risk.md):

    max over CC-like candidate ``a`` and MLO-like candidate ``b`` that could be one lesion
    of  sqrt(score_a · malignancy_a · score_b · malignancy_b)

"Could be one lesion" is :func:`mammocad.fuse.link.pair_cost` at most ``max_cost``: nipple
distance, size and class, the rule that links reported findings. The appearance term is left
out here on purpose — candidates below the finding threshold carry no RoI features at
inference, so using them from the training cache would make the training and inference
features differ. The geometric mean keeps the value on the scale of one contribution and lets
it rise only when both views rise, so adding a candidate can only raise it (the risk model is
monotone in it).

On the 0.5.1 detector's candidates (about 40 per breast down to score 0.01) nearly every strong
candidate finds some partner, and the feature adds nothing to the per-view maxima; the
measurement and its variants are in docs/fusion.md, section 6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from mammocad.fuse.geometry import PlacedFinding
from mammocad.fuse.link import LinkParams, pair_cost
from mammocad.risk.aggregate import contribution


def two_view_contribution(
    cc: Sequence[PlacedFinding], mlo: Sequence[PlacedFinding], params: LinkParams | None = None
) -> float:
    """The module docstring's maximum over the pairs of ``cc`` × ``mlo``; 0 when either view has
    no candidate or no pair could be one lesion."""
    params = params or LinkParams()
    best = 0.0
    # strongest first, so the loop can stop once no pair can beat the best found
    ranked_mlo = sorted(((contribution(b.finding), b) for b in mlo), key=lambda t: -t[0])
    for value_a, a in sorted(((contribution(a.finding), a) for a in cc), key=lambda t: -t[0]):
        if not ranked_mlo or value_a * ranked_mlo[0][0] <= best * best:
            break
        plain_a = replace(a, features=None)
        for value_b, b in ranked_mlo:
            if value_a * value_b <= best * best:
                break
            if pair_cost(plain_a, replace(b, features=None), params) <= params.max_cost:
                best = math.sqrt(value_a * value_b)
                break
    return best
