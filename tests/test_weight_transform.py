"""Tests of sfc_hls.weight_transform (spatial weights transformed on chip) and of
``LayerQuant``'s spatial fields: the specification checked against an independent
scalar evaluation with exact fractions."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from sfc_hls.catalog import get_algorithm
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import BoundError, LayerQuant, random_layer_quant
from sfc_hls.weight_transform import (
    exact_transform,
    max_weight_shift,
    transform_bits,
    transform_bound,
    transform_spatial_weights,
    weight_shift_bits,
)

ALGORITHMS = ["sfc6-7x7-3x3", "sfc4-4x4-3x3", "wino-2x2-3x3", "wino-4x4-3x3"]


def _scalar_weight(algo, w: np.ndarray, j: int, shift: int) -> int:
    """W[j] of one spatial kernel from the exact fractions of G: D (G w)_j, then the rounding."""
    u = algo.g_denominator * sum(
        (Fraction(g) * int(v) for g, v in zip(algo.g[j], w.reshape(-1), strict=True)),
        Fraction(0),
    )
    assert u.denominator == 1
    value = int(u)
    if shift:
        value = (value + (1 << (shift - 1))) >> shift  # floor division: round half up
    return max(-127, min(127, value))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_transform_equals_the_scalar_definition(algorithm):
    algo = get_algorithm(algorithm)
    rng = np.random.default_rng(3)
    cout, cin = 3, 2
    spatial = rng.integers(-127, 128, size=(cout, cin, 3, 3))
    spatial[0, 0] = 127  # extremes: the bound and the clamp
    spatial[1, 0] = -127
    shift = rng.integers(0, max_weight_shift(algo, 8) + 1, size=(algo.mults, cout))
    shift[:, 0] = 0  # unshifted: |u| up to the bound, clamped
    got = transform_spatial_weights(spatial, shift, algo, 8)
    assert got.shape == (algo.mults, cout, cin)
    for j in range(algo.mults):
        for co in range(cout):
            for ci in range(cin):
                want = _scalar_weight(algo, spatial[co, ci], j, int(shift[j, co]))
                assert got[j, co, ci] == want, (j, co, ci)


@pytest.mark.parametrize(
    "algorithm, bound, bits, max_shift, shift_bits",
    [
        ("sfc6-7x7-3x3", 36 * 127, 14, 6, 3),
        ("wino-2x2-3x3", 9 * 127, 12, 4, 3),
        ("wino-4x4-3x3", 576 * 127, 18, 10, 4),
    ],
)
def test_derived_widths(algorithm, bound, bits, max_shift, shift_bits):
    algo = get_algorithm(algorithm)
    assert transform_bound(algo, 8) == bound
    assert transform_bits(algo, 8) == bits
    assert max_weight_shift(algo, 8) == max_shift
    assert weight_shift_bits(algo, 8) == shift_bits
    # The bound is reached: the sign pattern of the row with the largest L1 norm.
    g = algo.g_scaled_int.astype(np.int64)
    row = int(np.argmax(np.abs(g).sum(axis=1)))
    worst = (127 * np.sign(g[row])).reshape(1, 1, 3, 3)
    assert exact_transform(worst, algo, 8)[row, 0, 0] == bound
    # The largest shift brings the bound into the weight range, one less does not.
    shifted = [
        transform_spatial_weights(worst, np.full((algo.mults, 1), k), algo, 8)[row, 0, 0]
        for k in (max_shift - 1, max_shift)
    ]
    assert shifted == [127, (bound + (1 << (max_shift - 1))) >> max_shift]  # clamped, exact


def test_bound_is_asserted():
    algo = get_algorithm("sfc6-7x7-3x3")
    spatial = np.full((1, 1, 3, 3), 128)  # outside int8's symmetric range
    with pytest.raises(BoundError, match="transformed spatial weight"):
        exact_transform(spatial, algo, 8)


def _spatial_layer(seed: int = 5) -> LayerQuant:
    config = EngineConfig(algorithm="sfc6-7x7-3x3", pco=2, cin_max=16, cout_max=16)
    params = random_layer_quant(config, 4, 3, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    spatial = rng.integers(-127, 128, size=(3, 4, 3, 3))
    shift = rng.integers(0, 7, size=(config.algo.mults, 3))
    weights = transform_spatial_weights(spatial, shift, config.algo, 8)
    return dataclasses.replace(params, weights=weights, spatial_weights=spatial, weight_shift=shift)


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
        (lambda p: {"weight_shift": p.weight_shift + 7}, r"weight_shift must be in \[0, 6\]"),
        (lambda p: {"spatial_weights": p.spatial_weights * 0 - 128}, "spatial_weights must be"),
    ],
)
def test_layer_quant_refuses_inconsistent_spatial_fields(change, match):
    params = _spatial_layer()
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(params, **change(params))
