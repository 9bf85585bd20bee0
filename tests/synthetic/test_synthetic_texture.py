"""Texture statistics and density categories."""

from __future__ import annotations

import numpy as np

from mammocad.structures import ViewPosition
from mammocad.synthetic import Density, generate_view
from mammocad.synthetic.texture import BETA, fast_length, power_law_noise


def test_power_law_noise_has_the_requested_spectral_slope() -> None:
    field = power_law_noise(
        (256, 256), rng=np.random.default_rng(0), spacing_mm=0.5, largest_mm=1e6
    )
    power = np.abs(np.fft.fft2(field)) ** 2
    fy = np.fft.fftfreq(256, 0.5)[:, None]
    fx = np.fft.fftfreq(256, 0.5)[None, :]
    freq = np.hypot(fx, fy)
    band = (freq > 0.02) & (freq < 0.5)
    slope = np.polyfit(np.log(freq[band]), np.log(power[band]), 1)[0]
    assert abs(slope + BETA) < 0.25
    assert abs(float(field.mean())) < 1e-3 and abs(float(field.std()) - 1) < 1e-3


def test_fast_length_is_5_smooth_and_not_smaller() -> None:
    for n in (1, 7, 97, 641, 1037, 3329):
        m = fast_length(n)
        assert m >= n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        assert m == 1


def test_denser_categories_render_brighter_breasts() -> None:
    means = []
    for density in Density:
        view = generate_view(seed=4, view=ViewPosition.CC, density=density)
        breast = view.pixels > 0.1
        means.append(float(view.pixels[breast].mean()))
    assert means == sorted(means)
    assert means[-1] - means[0] > 0.15
