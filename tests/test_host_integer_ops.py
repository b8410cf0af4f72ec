"""host.integer_ops: the host's integer residual add, pooling and classifier."""

import numpy as np
import pytest
import torch

from sfc_hls.host.integer_ops import (
    AddQuant,
    AvgPoolQuant,
    LinearQuant,
    fixed_point_multipliers,
    maxpool_int8,
)


def test_fixed_point_multipliers_keep_16_bits():
    mults, shift = fixed_point_multipliers([0.37, 1.9])
    assert mults.max() < 1 << 16 and mults.max() >= 1 << 15
    assert np.allclose(mults / 2.0**shift, [0.37, 1.9], rtol=2e-4)
    with pytest.raises(ValueError, match="finite and > 0"):
        fixed_point_multipliers([0.0])
    with pytest.raises(ValueError, match="does not fit"):
        fixed_point_multipliers([1e6])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_residual_add_matches_real_sum_within_one_lsb(seed):
    rng = np.random.default_rng(seed)
    sa, sb = rng.uniform(0.01, 0.1, 2)
    so = (sa + sb) * rng.uniform(0.6, 1.2)
    relu = bool(seed % 2)
    op = AddQuant.from_scales(sa, sb, so, relu=relu)
    a = rng.integers(-128, 128, size=(2, 3, 5, 5))
    b = rng.integers(-128, 128, size=(2, 3, 5, 5))
    got = op(a, b)
    real = (a * sa + b * sb) / so
    want = np.clip(np.floor(real + 0.5), 0 if relu else -128, 127)
    assert np.abs(got - want).max() <= 1  # rounding of the 16-bit multipliers
    assert (got == want).mean() > 0.99
    # The integer arithmetic itself, spelled out.
    total = a * op.mult_a + b * op.mult_b
    spelled = np.clip((total + (1 << (op.shift - 1))) >> op.shift, 0 if relu else -128, 127)
    assert np.array_equal(got, spelled)
    with pytest.raises(ValueError, match="differ in shape"):
        op(a, b[:, :2])
    with pytest.raises(TypeError, match="integer array"):
        op(a.astype(float), b)


def test_maxpool_equals_torch_with_padding():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(2, 3, 9, 8))
    got = maxpool_int8(x, 3, 2, 1)
    want = torch.nn.functional.max_pool2d(torch.tensor(x, dtype=torch.float64), 3, 2, 1)
    assert np.array_equal(got, want.numpy().astype(np.int64))


def test_global_average_pool_rounds_the_exact_sum():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 128, size=(3, 4, 7, 7))
    op = AvgPoolQuant.from_scales(49, 0.05, 0.05 / 3)
    got = op(x)
    real = x.mean(axis=(2, 3)) * 3
    assert np.abs(got - np.clip(np.floor(real + 0.5), -128, 127)).max() <= 1
    with pytest.raises(ValueError, match="H\\*W=49"):
        op(x[:, :, :6])


def test_linear_integer_accumulation_and_float_logits():
    rng = np.random.default_rng(7)
    w = rng.normal(size=(10, 64))
    b = rng.normal(size=10)
    sx = 0.02
    op = LinearQuant.quantize(w, b, sx)
    x = rng.integers(0, 128, size=(5, 64))
    acc = op.accumulate(x)
    assert acc.dtype == np.int64
    assert np.array_equal(acc, x @ op.weight.T + op.bias)
    logits = op(x)
    real = (x * sx) @ w.T + b
    assert np.abs(logits - real).max() < 0.02 * np.abs(real).max()
    with pytest.raises(ValueError, match=r"linear input must be \(N, 64\)"):
        op(x[:, :10])
