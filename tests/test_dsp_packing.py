"""Two MACs per DSP: the specification (exhaustive for int8), the RTL unit (SAT proof), the config."""

from __future__ import annotations

import numpy as np
import pytest

from sfc_hls.config import EngineConfig
from sfc_hls.dsp_packing import PackedMultiply, packed_products, packing_fits
from sfc_hls.hw.formal_packing import MUTANTS, main, prove_packed_multiplier


def test_int8_specification_is_exact_for_every_input():
    spec = PackedMultiply(8, 8)
    w = np.arange(-128, 128)
    w_hi, w_lo = w[:, None], w[None, :]
    for a in range(-128, 128):  # 2**24 inputs, one activation at a time
        hi, lo = packed_products(a, w_hi, w_lo, spec)
        np.testing.assert_array_equal(hi, np.broadcast_to(a * w_hi, hi.shape))
        np.testing.assert_array_equal(lo, np.broadcast_to(a * w_lo, lo.shape))


@pytest.mark.parametrize(("act_bits", "weight_bits"), [(2, 2), (4, 3), (6, 6), (5, 7)])
def test_other_widths_are_exact_for_every_input(act_bits, weight_bits):
    spec = PackedMultiply(act_bits, weight_bits)
    a = np.arange(-(1 << (act_bits - 1)), 1 << (act_bits - 1))[:, None, None]
    w = np.arange(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1))
    hi, lo = packed_products(a, w[None, :, None], w[None, None, :], spec)
    np.testing.assert_array_equal(hi, np.broadcast_to(a * w[None, :, None], hi.shape))
    np.testing.assert_array_equal(lo, np.broadcast_to(a * w[None, None, :], lo.shape))


def test_derived_widths_are_the_smallest_that_hold_the_extremes():
    spec = PackedMultiply(8, 8)
    assert (spec.spacing, spec.packed_weight_bits, spec.product_bits) == (16, 25, 32)
    lo, hi = spec.packed_weight_range
    assert (lo, hi) == (-128 * 65536 - 128, 127 * 65536 + 127)
    assert lo < -(1 << 23)  # one bit more than spacing + weight_bits: the low sign extension
    assert -128 * lo > (1 << 30)  # and the product needs 32 bits


def test_one_bit_less_spacing_breaks_only_at_the_most_negative_corner():
    class Narrow(PackedMultiply):
        @property
        def spacing(self) -> int:
            return 15

    a = np.arange(-128, 128)[:, None]
    hi, lo = packed_products(a, 0, np.arange(-128, 128)[None, :], Narrow(8, 8))
    wrong = np.argwhere(lo != a * np.arange(-128, 128)[None, :])
    assert wrong.tolist() == [[0, 0]]  # a = w_lo = -128: the product 16384 needs 16 bits


@pytest.mark.parametrize(
    ("act_bits", "weight_bits", "fits"),
    [(8, 8, True), (10, 8, True), (9, 8, True), (8, 9, True), (11, 8, False), (10, 10, False),
     (4, 4, True), (19, 2, False)],
)  # fmt: skip
def test_packing_fits_a_dsp48e2(act_bits, weight_bits, fits):
    assert packing_fits(act_bits, weight_bits) is fits


def test_out_of_range_input_is_named():
    with pytest.raises(ValueError, match=r"w_lo must be a signed 8-bit integer in \[-128, 127\]"):
        packed_products(1, 2, 128, PackedMultiply(8, 8))


# -- the engine configuration --------------------------------------------------------------


def test_default_engine_packs_where_it_fits():
    assert EngineConfig().macs_per_dsp == 2
    assert EngineConfig(pco=1, cout_max=8).macs_per_dsp == 1  # no lane pair
    assert EngineConfig(act_bits=10, weight_bits=10).macs_per_dsp == 1  # 31-bit packed weight
    assert EngineConfig(macs_per_dsp=1).macs_per_dsp == 1
    assert EngineConfig(target="ecp5").macs_per_dsp == 1  # 18x18 multipliers


def test_packing_that_does_not_fit_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"macs_per_dsp=2 .* target='ecp5' .* use macs_per_dsp=1"):
        EngineConfig(target="ecp5", macs_per_dsp=2)
    with pytest.raises(
        ValueError, match=r"target must be one of \('xilinx', 'ecp5'\), got 'ice40'"
    ):
        EngineConfig(target="ice40")
    with pytest.raises(ValueError, match=r"macs_per_dsp=2 .* act_bits=10, weight_bits=10"):
        EngineConfig(act_bits=10, weight_bits=10, macs_per_dsp=2)
    with pytest.raises(ValueError, match=r"macs_per_dsp must be an int in \[1, 2\], got 4"):
        EngineConfig(macs_per_dsp=4)


def test_config_round_trip_keeps_the_choice():
    config = EngineConfig(pco=2, cout_max=8, macs_per_dsp=1)
    assert EngineConfig.from_dict(config.to_dict()) == config
    ecp5 = EngineConfig(pco=2, cout_max=8, target="ecp5")
    assert EngineConfig.from_dict(ecp5.to_dict()) == ecp5
    old = {k: v for k, v in config.to_dict().items() if k != "target"}  # a manifest before target
    assert EngineConfig.from_dict(old) == config


# -- the RTL unit: SAT proof and mutants ---------------------------------------------------


def test_rtl_unit_is_proven_for_small_widths():
    result = prove_packed_multiplier(4, 4)
    assert result.result == "PROVEN", result.line()


@pytest.mark.parametrize("mutant", MUTANTS)
def test_mutants_are_refuted_with_a_real_counterexample(mutant):
    result = prove_packed_multiplier(5, 4, mutant=mutant)
    assert result.result == "REFUTED", result.line()
    assert "a=" in result.detail


def test_command_line_bad_width_is_one_line(capsys):
    assert main(["--act-bits", "40"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "formal_packing: error: --act-bits must be an int in [2, 18], got 40"


@pytest.mark.slow
def test_rtl_unit_is_proven_for_int8():
    result = prove_packed_multiplier(8, 8)
    assert result.result == "PROVEN", result.line()
