"""Algorithm core: exact construction, reference counts, properties, bad input."""

import math
from fractions import Fraction

import numpy as np
import pytest

from sfc_hls.baselines import default_points, direct_1d, direct_2d, winograd_1d, winograd_2d
from sfc_hls.bilinear import BilinearAlgorithm, signed_width
from sfc_hls.catalog import DEFAULT_ALGORITHMS, get_algorithm, parse_name
from sfc_hls.sfc import SUPPORTED_DFT_SIZES, sfc_1d, sfc_2d, sfc_output_tile_range

# ICLR'24 Table 1 (docs/sfc-algorithm.md section 6): mults per tile, standard mults.
REFERENCE_COUNTS = {
    "wino-2x2-3x3": (16, 36),
    "wino-4x4-3x3": (36, 144),
    "sfc4-4x4-3x3": (46, 144),
    "sfc6-6x6-3x3": (88, 324),
    "sfc6-7x7-3x3": (132, 441),
    "sfc6-6x6-5x5": (184, 900),
    "sfc6-6x6-7x7": (388, 1764),
}
REFERENCE_RATIOS = {"wino-2x2-3x3": "2.25", "wino-4x4-3x3": "4.00", "sfc4-4x4-3x3": "3.13",
                    "sfc6-6x6-3x3": "3.68", "sfc6-7x7-3x3": "3.34", "sfc6-6x6-5x5": "4.89",
                    "sfc6-6x6-7x7": "4.54"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_reference_counts(name):
    algo = get_algorithm(name)
    assert (algo.mults, algo.standard_mults) == REFERENCE_COUNTS[name]
    # The paper truncates: 1764/388 = 4.546 is reported as 4.54.
    assert f"{math.floor(algo.ratio * 100) / 100:.2f}" == REFERENCE_RATIOS[name]


def test_doc_1d_counts():
    # docs/sfc-algorithm.md: DFT-6 -> 8, DFT-4 -> 5 circular products; SFC-6(6,3) m=10, (7,3) m=12.
    assert sfc_1d(6, 4, 3).mults == 8  # pure circular
    assert sfc_1d(4, 2, 3).mults == 5
    assert sfc_1d(6, 6, 3).mults == 10
    assert sfc_1d(6, 7, 3).mults == 12
    # 2D DFT with Hermitian symmetry: 52 (N=6), 22 (N=4), 13 (N=3); pure circular tiles.
    assert sfc_2d(6, 4, 3).mults == 52
    assert sfc_2d(4, 2, 3).mults == 22
    assert sfc_2d(3, 1, 3).mults == 13


def test_2d_count_formula():
    # m_2D = m_DFT2D + 2|C||K| + |K|^2 with C, K the 1D circular and correction parts.
    for n in SUPPORTED_DFT_SIZES:
        for r in (2, 3, 5):
            lo, hi = sfc_output_tile_range(n, r)
            for m in range(lo, min(hi, n + 1) + 1):
                one = sfc_1d(n, m, r)
                two = sfc_2d(n, m, r)
                c, k = one.info["circular"], one.info["corrections"]
                assert two.mults == two.info["dft2d"] + 2 * c * k + k * k


@pytest.mark.parametrize("n", SUPPORTED_DFT_SIZES)
@pytest.mark.parametrize("r", range(1, 8))
def test_sfc_1d_every_tile_is_exact_and_ternary(n, r):
    lo, hi = sfc_output_tile_range(n, r)
    for m in range(lo, hi + 1):
        algo = sfc_1d(n, m, r)  # verifies the identity exactly or raises
        assert algo.ternary_input_transform
        assert algo.output_transform_is_shift_add
        assert set(algo.output_transform_entries) <= {-2, -1, 1, 2}


@pytest.mark.parametrize(
    ("n", "m", "r"),
    [(3, 3, 3), (4, 4, 3), (4, 5, 3), (6, 4, 3), (6, 6, 3), (6, 7, 3), (6, 8, 3), (6, 6, 1),
     (6, 6, 2), (4, 4, 5), (6, 6, 5), (6, 7, 7), (6, 6, 7), (3, 2, 7), (4, 3, 4)],
)  # fmt: skip
def test_sfc_2d_exact_ternary_shift_add(n, m, r):
    algo = sfc_2d(n, m, r)
    assert algo.ternary_input_transform
    assert algo.output_transform_is_shift_add
    assert algo.input_tile == m + r - 1


def test_verify_rejects_a_corrupted_matrix():
    good = sfc_1d(6, 6, 3)
    bt = good.bt.copy()
    bt[0, 1] += 1
    with pytest.raises(ArithmeticError, match="bilinear identity fails"):
        BilinearAlgorithm(
            name="broken", title="broken", family="sfc", dims=1, output_tile=6, kernel=3,
            bt=bt, g=good.g, at=good.at, product_groups=good.product_groups,
        )  # fmt: skip


def test_winograd_standard_matrices():
    # Lavin & Gray F(2,3): B^T, and G with 1/2, A^T = [[1,1,1,0],[0,1,-1,1]].
    f23 = winograd_1d(2, 3)
    assert f23.bt_int.tolist() == [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]]
    assert f23.at_int.tolist() == [[1, 1, 1, 0], [0, 1, -1, 1]]
    # F(4,3) B^T first row is (4, 0, -5, 0, 1, 0).
    assert winograd_1d(4, 3).bt_int[0].tolist() == [4, 0, -5, 0, 1, 0]
    assert not winograd_2d(4, 3).ternary_input_transform
    assert default_points(8) == [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2), "inf"]


def test_winograd_custom_points_and_errors():
    algo = get_algorithm("wino-2-3@0,1,-1,2")  # four finite points, no infinity
    assert algo.mults == 4
    assert algo.name == "wino-2-3@0,1,-1,2"
    with pytest.raises(ValueError, match="points must be distinct"):
        winograd_1d(2, 3, [0, 1, 1])
    with pytest.raises(ValueError, match="needs n = m \\+ r - 1 = 4 points"):
        winograd_1d(2, 3, [0, 1])
    with pytest.raises(ValueError, match="not a rational number"):
        winograd_1d(2, 3, [0, 1, "x"])


def test_direct_is_identity_transform():
    algo = direct_2d(3)
    assert algo.mults == 9 and algo.ratio == 1
    assert np.array_equal(algo.bt_int, np.eye(9, dtype=np.int64))
    assert direct_1d(5, out_tile=2).mults == 10


def test_input_transform_width_is_attained():
    # The width comes from the row L1 norm; the extreme int8 tile attains the bound.
    for name in ("sfc6-7x7-3x3", "wino-4x4-3x3", "sfc4-4x4-3x3"):
        algo = get_algorithm(name)
        lo, hi = algo.input_transform_range(8)
        bt = algo.bt_int
        x_hi = np.where(bt > 0, 127, -128)  # per row: maximizing tile
        x_lo = np.where(bt > 0, -128, 127)
        assert np.array_equal((bt * x_hi).sum(axis=1), hi)
        assert np.array_equal((bt * x_lo).sum(axis=1), lo)
        assert algo.input_transform_width(8) == max(
            signed_width(int(a), int(b)) for a, b in zip(lo, hi, strict=True)
        )


def test_signed_width():
    assert signed_width(-128, 127) == 8
    assert signed_width(-129, 0) == 9
    assert signed_width(0, 128) == 9
    assert signed_width(0, 0) == 1


def test_layer_mults_count_edge_tiles():
    a7 = get_algorithm("sfc6-7x7-3x3")
    a6 = get_algorithm("sfc6-6x6-3x3")
    assert a7.tiles(56, 56) == 64  # docs section 8
    assert a6.tiles(56, 56) == 100
    assert a7.layer_mults(56, 56, 64, 64) == 64 * 132 * 64 * 64
    assert a7.layer_standard_mults(56, 56, 64, 64) == 56 * 56 * 9 * 64 * 64
    assert a7.layer_ratio(56, 56, 1, 1) == pytest.approx(441 / 132)
    assert a6.layer_ratio(56, 56, 1, 1) < a6.ratio  # edge-tile waste


@pytest.mark.parametrize("name", DEFAULT_ALGORITHMS)
def test_adder_networks_compute_the_matrices(name):
    algo = get_algorithm(name)
    rng = np.random.default_rng(1234)
    for net, mat in ((algo.input_adder_network, algo.bt), (algo.output_adder_network, algo.at)):
        assert np.array_equal(net.to_matrix(), mat)
        x = rng.integers(-128, 128, size=(5, mat.shape[1]))
        mat_int = np.array(mat, dtype=np.int64)
        assert np.array_equal(net.evaluate(x), x @ mat_int.T)
        assert net.additions <= net.additions_without_sharing
    if algo.ternary_input_transform:
        assert algo.input_adder_network.constant_mults == 0


def test_sharing_reduces_sfc_input_adds():
    algo = get_algorithm("sfc6-7x7-3x3")
    net = algo.input_adder_network
    assert net.additions < net.additions_without_sharing / 2


def test_construction_is_cached():
    assert get_algorithm("sfc6-7x7-3x3") is get_algorithm("SFC6-7x7-3x3")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("sfc5-5x5-3x3", r"N \(DFT size\) must be one of \(3, 4, 6\)"),
        ("sfc6-6x7-3x3", "output tile must be square"),
        ("sfc6-6x6-3x5", "kernel must be square"),
        ("sfc6-2x2-3x3", r"M \(output tile\) for SFC-6 with R=3 must be in \[4, 8\]"),
        ("sfc6-9x9-3x3", r"must be in \[4, 8\]"),
        ("sfc6-6x6-12x12", r"R \(kernel size\) must be in \[1, 11\]"),
        ("sfc6-6x6-0x0", r"R \(kernel size\)"),
        ("sfc6-6-3x3", "both be 1D or both 2D"),
        ("wino-20x20-3x3", "m \\+ r - 1 <= 12"),
        ("wino-20-3", "m \\+ r - 1 <= 16"),
        ("conv-3x3", "unknown algorithm name"),
        ("", "unknown algorithm name"),
    ],
)
def test_bad_names(name, match):
    with pytest.raises(ValueError, match=match):
        get_algorithm(name)


def test_bad_constructor_types():
    with pytest.raises(TypeError, match="M must be an int"):
        sfc_2d(6, 6.0, 3)
    with pytest.raises(TypeError, match="r must be an int"):
        winograd_2d(2, "3")
    with pytest.raises(TypeError, match="algorithm name must be a str"):
        parse_name(3)
