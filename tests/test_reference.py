"""Float and exact-integer tile-by-tile paths against torch and direct integer convolution."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sfc_hls.catalog import get_algorithm
from sfc_hls.reference import conv1d, conv1d_exact, conv2d, conv2d_exact, direct_conv2d_int

ALGOS_2D = [
    "sfc6-7x7-3x3", "sfc6-6x6-3x3", "sfc4-4x4-3x3", "sfc3-3x3-3x3", "sfc6-6x6-5x5",
    "sfc6-6x6-7x7", "sfc4-5x5-3x3", "sfc6-4x4-3x3", "sfc6-6x6-1x1", "wino-2x2-3x3",
    "wino-4x4-3x3", "wino-6x6-3x3", "wino-2x2-5x5", "direct-3x3", "direct-2x2-3x3",
    "direct-5x5",
]  # fmt: skip
ALGOS_1D = ["sfc4-4-3", "sfc6-6-3", "sfc6-7-3", "sfc3-3-5", "wino-4-3", "direct-3"]

# float64 tile arithmetic vs torch's direct float64 convolution: the bound.
REL_TOL = 1e-9


def _layer(draw, algo, dims, integer):
    n = draw(st.integers(1, 2))
    cin = draw(st.integers(1, 4))
    cout = draw(st.integers(1, 3))
    r = algo.kernel
    padding = draw(st.integers(0, r))
    lo = max(1, r - 2 * padding)
    size = [draw(st.integers(lo, lo + 15)) for _ in range(dims)]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if integer:
        x = rng.integers(-128, 128, size=(n, cin, *size))
        w = rng.integers(-128, 128, size=(cout, cin) + (r,) * dims)
    else:
        x = rng.standard_normal((n, cin, *size))
        w = rng.standard_normal((cout, cin) + (r,) * dims)
    return x, w, padding


@st.composite
def float_case_2d(draw):
    algo = get_algorithm(draw(st.sampled_from(ALGOS_2D)))
    return (algo, *_layer(draw, algo, 2, integer=False))


@st.composite
def int_case_2d(draw):
    algo = get_algorithm(draw(st.sampled_from(ALGOS_2D)))
    return (algo, *_layer(draw, algo, 2, integer=True))


@settings(max_examples=120)
@given(float_case_2d())
def test_float_path_matches_torch(case):
    algo, x, w, padding = case
    got = conv2d(x, w, algo, padding=padding)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=padding)
    ref = ref.numpy()
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= REL_TOL * max(1.0, np.max(np.abs(ref)))


@settings(max_examples=120)
@given(int_case_2d())
def test_integer_path_equals_direct_integer_conv(case):
    algo, x, w, padding = case
    got = conv2d_exact(x, w, algo, padding=padding)
    assert got.dtype == np.int64
    assert np.array_equal(got, direct_conv2d_int(x, w, padding=padding))


@settings(max_examples=60)
@given(st.sampled_from(ALGOS_1D), st.data())
def test_1d_paths(name, data):
    algo = get_algorithm(name)
    x, w, padding = _layer(data.draw, algo, 1, integer=True)
    ref = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w), padding=padding)
    assert np.array_equal(conv1d_exact(x, w, algo, padding=padding), ref.numpy())
    xf = x.astype(np.float64) / 7.0
    got = conv1d(xf, w.astype(np.float64), algo, padding=padding)
    ref = torch.nn.functional.conv1d(
        torch.from_numpy(xf), torch.from_numpy(w * 1.0), padding=padding
    )
    assert np.max(np.abs(got - ref.numpy())) <= REL_TOL * max(1.0, float(ref.abs().max()))


def test_accepts_torch_tensors():
    algo = get_algorithm("sfc6-7x7-3x3")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 9, 9, generator=g, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    ref = torch.nn.functional.conv2d(x, w, padding=1).numpy()
    assert np.allclose(conv2d(x, w, algo, padding=1), ref, rtol=0, atol=1e-12)


def test_resnet_layer_shape_exact():
    # 56x56x64 layer, SFC-6(7x7): 64 tiles exactly, integer result equals direct.
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(1, 8, 56, 56))
    w = rng.integers(-128, 128, size=(8, 8, 3, 3))
    algo = get_algorithm("sfc6-7x7-3x3")
    assert np.array_equal(conv2d_exact(x, w, algo, padding=1), direct_conv2d_int(x, w, padding=1))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"stride": 2}, ValueError, "stride must be 1"),
        ({"padding": -1}, ValueError, "padding must be an int >= 0"),
        ({"x": np.zeros((2, 9, 9))}, ValueError, r"x must be 4D \(NCHW\)"),
        ({"w": np.zeros((3, 2, 3))}, ValueError, "w must be 4D"),
        ({"w": np.zeros((3, 5, 3, 3))}, ValueError, "channel mismatch: x has Cin=2, w has Cin=5"),
        ({"w": np.zeros((3, 2, 5, 5))}, ValueError, r"does not match sfc6-7x7-3x3 \(R=3\)"),
        ({"x": np.zeros((1, 2, 2, 2))}, ValueError, "smaller than the kernel"),
        ({"x": np.zeros((1, 2, 9, 9), dtype=bool)}, TypeError, "float or integer dtype"),
        ({"x": [[1.0]]}, TypeError, "numpy array or torch tensor"),
        ({"algorithm": get_algorithm("sfc4-4-3")}, ValueError, "conv2d needs a 2D algorithm"),
        ({"algorithm": "sfc6-7x7-3x3"}, TypeError, "must be a BilinearAlgorithm"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = {
        "x": np.zeros((1, 2, 9, 9)),
        "w": np.zeros((3, 2, 3, 3)),
        "algorithm": get_algorithm("sfc6-7x7-3x3"),
        "padding": 0,
        "stride": 1,
    }
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        conv2d(**args)


def test_exact_path_rejects_float_data():
    algo = get_algorithm("sfc6-7x7-3x3")
    with pytest.raises(TypeError, match="integer dtype for the exact path"):
        conv2d_exact(np.zeros((1, 1, 9, 9)), np.zeros((1, 1, 3, 3), dtype=np.int64), algo)
