"""Tests of sfc_hls.weight_transform (spatial weights transformed on chip) and of
``LayerQuant``'s spatial fields: the specification checked against an independent
scalar evaluation with exact fractions."""

from __future__ import annotations

import dataclasses
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from sfc_hls.catalog import get_algorithm
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import BoundError, LayerQuant, random_layer_quant
from sfc_hls.weight_transform import (
    SHIFT_WINDOW,
    exact_transform,
    fitting_shifts,
    max_weight_shift,
    row_bounds,
    shift_window,
    transform_bits,
    transform_bound,
    transform_spatial_weights,
    weight_shift_bits,
)

ALGORITHMS = ["sfc6-7x7-3x3", "sfc4-4x4-3x3", "wino-2x2-3x3", "wino-4x4-3x3"]


def _scalar_u(algo, w: np.ndarray, j: int) -> int:
    """u[j] of one spatial kernel from the exact fractions of G: D (G w)_j."""
    u = algo.g_denominator * sum(
        (Fraction(g) * int(v) for g, v in zip(algo.g[j], w.reshape(-1), strict=True)),
        Fraction(0),
    )
    assert u.denominator == 1
    return int(u)


def _scalar_shift(value: int, shift: int) -> int:
    return (value + (1 << (shift - 1))) >> shift if shift else value  # floor: round half up


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_transform_equals_the_scalar_definition(algorithm):
    """Exact u, the smallest fitting shift in each window, and the rounding, against
    Python integers; the extreme kernels (+-127, the sign pattern of a row) included."""
    algo = get_algorithm(algorithm)
    rng = np.random.default_rng(3)
    cout, cin = 3, 4
    g = algo.g_scaled_int.astype(np.int64)
    spatial = rng.integers(-127, 128, size=(cout, cin, 3, 3))
    spatial[0, 0] = 127
    spatial[1, 0] = (-127 * np.sign(g[int(np.argmax(np.abs(g).sum(axis=1)))])).reshape(3, 3)
    spatial[2] //= 16  # small weights: the bottom of the windows
    u = exact_transform(spatial, algo, 8)
    shift = fitting_shifts(u, algo, 8)
    got = transform_spatial_weights(spatial, shift, algo, 8)
    lo, hi = shift_window(algo, 8)
    for j in range(algo.mults):
        for co in range(cout):
            values = [_scalar_u(algo, spatial[co, ci], j) for ci in range(cin)]
            assert list(u[j, co]) == values
            fits = [s for s in range(lo[j], hi[j] + 1)
                    if all(abs(_scalar_shift(v, s)) <= 127 for v in values)]  # fmt: skip
            assert shift[j, co] == fits[0], (j, co)
            assert list(got[j, co]) == [_scalar_shift(v, fits[0]) for v in values]


@pytest.mark.parametrize(
    "algorithm, bound, bits, max_shift, windows",
    [
        ("sfc6-7x7-3x3", 36 * 127, 14, 6, {(0, 3): 48, (1, 4): 52, (2, 5): 16, (3, 6): 16}),
        ("wino-2x2-3x3", 9 * 127, 12, 4, {(0, 2): 4, (0, 3): 8, (1, 4): 4}),
        (
            "wino-4x4-3x3",
            576 * 127,
            18,
            10,
            {(3, 6): 9, (4, 7): 12, (5, 8): 10, (6, 9): 4, (7, 10): 1},
        ),  # fmt: skip
    ],
)
def test_derived_widths_and_windows(algorithm, bound, bits, max_shift, windows):
    algo = get_algorithm(algorithm)
    assert transform_bound(algo, 8) == bound == row_bounds(algo, 8).max()
    assert transform_bits(algo, 8) == bits
    assert max_weight_shift(algo, 8) == max_shift
    assert weight_shift_bits(algo, 8) == 2 == (SHIFT_WINDOW - 1).bit_length()
    lo, hi = shift_window(algo, 8)
    assert dict(Counter(zip(lo.tolist(), hi.tolist(), strict=True))) == windows
    # Each row's bound is reached (the sign pattern of the row), and the top of its window
    # is the smallest shift that fits it: one less does not.
    g = algo.g_scaled_int.astype(np.int64)
    worst = (127 * np.sign(g)).reshape(-1, 1, 3, 3)  # kernel k: the sign pattern of row k
    u = exact_transform(worst, algo, 8)  # (m, m, 1)
    diag = u[np.arange(algo.mults), np.arange(algo.mults), 0]
    assert (diag == row_bounds(algo, 8)).all()
    for j in range(algo.mults):
        assert _scalar_shift(int(diag[j]), int(hi[j])) <= 127
        assert hi[j] == 0 or _scalar_shift(int(diag[j]), int(hi[j]) - 1) > 127


def test_bounds_are_asserted():
    algo = get_algorithm("sfc6-7x7-3x3")
    with pytest.raises(BoundError, match="transformed spatial weight"):
        exact_transform(np.full((1, 1, 3, 3), 128), algo, 8)  # outside int8's symmetric range
    ones = np.full((1, 1, 3, 3), 127)
    with pytest.raises(BoundError, match=r"requantized transformed weight"):
        transform_spatial_weights(ones, np.zeros((algo.mults, 1), dtype=np.int64), algo, 8)


def _spatial_layer(seed: int = 5) -> LayerQuant:
    config = EngineConfig(algorithm="sfc6-7x7-3x3", pco=2, cin_max=16, cout_max=16,
                          weight_transform=True)  # fmt: skip
    return random_layer_quant(config, 4, 3, np.random.default_rng(seed))


def test_layer_quant_spatial_fields_round_trip(tmp_path):
    params = _spatial_layer()
    assert params.has_spatial_weights
    path = tmp_path / "layer.json"
    params.save(path)
    back = LayerQuant.load(path)
    assert back.has_spatial_weights
    np.testing.assert_array_equal(back.spatial_weights, params.spatial_weights)
    np.testing.assert_array_equal(back.weight_shift, params.weight_shift)
    plain = dataclasses.replace(params, spatial_weights=None, weight_shift=None)
    assert "spatial_weights" not in plain.to_dict()


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: {"weights": p.weights + (p.weights < 127)}, r"is not the transform"),
        (lambda p: {"weight_shift": None}, "spatial_weights is given without weight_shift"),
        (lambda p: {"weight_shift": p.weight_shift[:, :2]}, "weight_shift has shape"),
        (lambda p: {"weight_shift": p.weight_shift * 0 + 7}, r"outside position 0's window"),
        (lambda p: {"spatial_weights": p.spatial_weights * 0 - 128}, "spatial_weights must be"),
        (lambda p: {"weight_shift": _window_bottom(p)}, "weight_shift too small"),
        (lambda p: {"mode": "direct"}, "weights of a direct-mode layer"),
    ],
)
def test_layer_quant_refuses_inconsistent_spatial_fields(change, match):
    params = _spatial_layer()
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(params, **change(params))


def _window_bottom(params: LayerQuant) -> np.ndarray:
    """The lowest shift of every window: too small for random full-range weights."""
    lo = shift_window(params.algo, 8)[0]
    return np.broadcast_to(lo[:, None], params.weight_shift.shape).copy()
