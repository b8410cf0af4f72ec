"""Strided convolution on 1x1-output-tile (direct) algorithms: tiles, golden models, streams.

The host runs ResNet's stride-2 convs (3x3, 1x1 downsample, 7x7 stem) on a
``direct-RxR`` engine by sending one input patch per output pixel; these
tests pin the strided tile extraction against torch and the golden models
against each other.
"""

import numpy as np
import pytest
import torch

from sfc_hls.catalog import get_algorithm
from sfc_hls.config import EngineConfig
from sfc_hls.datapath import LayerQuant, random_layer_quant
from sfc_hls.golden import conv2d_int8, conv2d_int8_scalar
from sfc_hls.hw.engine_streams import EngineStreams, pack
from sfc_hls.reference import extract_tiles, output_size

# (kernel, stride, padding, height, width): ResNet's shapes and odd corner cases.
CASES = [
    (3, 2, 1, 14, 14),
    (3, 2, 1, 7, 9),
    (1, 2, 0, 14, 13),
    (7, 2, 3, 20, 17),
    (3, 3, 0, 10, 11),
    (3, 2, 0, 3, 4),
]


@pytest.mark.parametrize(("kernel", "stride", "padding", "height", "width"), CASES)
def test_lossless_strided_golden_equals_torch(kernel, stride, padding, height, width):
    seed = kernel * 1000 + height * 10 + width
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, size=(5, 3, kernel, kernel))
    params, w_int = LayerQuant.lossless(f"direct-{kernel}x{kernel}", w, padding=padding)
    x = rng.integers(-128, 128, size=(2, 3, height, width))
    got = conv2d_int8(x, params, stride=stride)
    want = torch.nn.functional.conv2d(
        torch.tensor(x, dtype=torch.float64),
        torch.tensor(w_int, dtype=torch.float64),
        stride=stride,
        padding=padding,
    ).numpy()
    assert got.shape == want.shape
    assert np.array_equal(got, want)
    assert np.array_equal(conv2d_int8_scalar(x, params, stride=stride), got)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantized_strided_layer_is_the_subsampled_stride1_layer(seed):
    rng = np.random.default_rng(seed)
    config = EngineConfig(algorithm="direct-3x3", pco=2, cin_max=8, cout_max=8)
    params = random_layer_quant(config, 4, 3, rng, padding=1, relu=bool(seed % 2))
    x = rng.integers(-128, 128, size=(1, 4, 9, 8))
    full = conv2d_int8(x, params)
    assert np.array_equal(conv2d_int8(x, params, stride=2), full[:, :, ::2, ::2])
    assert np.array_equal(conv2d_int8_scalar(x, params, stride=2), full[:, :, ::2, ::2])


def test_output_size_and_tile_grid():
    assert output_size(56, 3, 1) == 56
    assert output_size(56, 3, 1, 2) == 28
    assert output_size(224, 7, 3, 2) == 112
    assert output_size(56, 1, 0, 2) == 28
    algo = get_algorithm("direct-3x3")
    x = np.arange(2 * 7 * 7).reshape(1, 2, 7, 7)
    tiles, outs, grid = extract_tiles(x, algo, 1, 2)
    assert outs == [4, 4] and grid == [4, 4] and tiles.shape == (1, 2, 4, 4, 9)
    # tile (1, 2) reads input rows 1..3, columns 3..5
    assert np.array_equal(tiles[0, 0, 1, 2].reshape(3, 3), x[0, 0, 1:4, 3:6])
    # tile (0, 0) starts in the padding
    assert np.array_equal(tiles[0, 1, 0, 0].reshape(3, 3)[1:, 1:], x[0, 1, :2, :2])
    assert tiles[0, 1, 0, 0].reshape(3, 3)[0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("algorithm", ["sfc6-7x7-3x3", "wino-2x2-3x3"])
def test_stride_rejected_for_multi_output_tiles(algorithm):
    rng = np.random.default_rng(0)
    config = EngineConfig(algorithm=algorithm, pco=2, cin_max=8, cout_max=8)
    params = random_layer_quant(config, 2, 2, rng)
    x = rng.integers(-128, 128, size=(1, 2, 8, 8))
    with pytest.raises(ValueError, match="stride=2 needs an algorithm with a 1x1 output tile"):
        conv2d_int8(x, params, stride=2)
    with pytest.raises(ValueError, match="stride=2 needs an algorithm with a 1x1 output tile"):
        conv2d_int8_scalar(x, params, stride=2)
    with pytest.raises(ValueError, match="stride=2 needs an algorithm"):
        extract_tiles(x, config.algo, 1, 2)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        conv2d_int8(x, params, stride=0)


def test_strided_stream_encoding_round_trip():
    """Beats for a strided layer carry one patch per output pixel; assemble inverts the order."""
    config = EngineConfig(algorithm="direct-3x3", pco=2, cin_max=8, cout_max=8)
    streams = EngineStreams(config)
    rng = np.random.default_rng(4)
    params = random_layer_quant(config, 3, 5, rng, padding=1)
    x = rng.integers(-128, 128, size=(2, 3, 9, 6))
    beats = streams.layer_beats(params, x, stride=2)
    assert beats.tiles == 2 * 5 * 3  # one tile per output pixel (5 x 3 per image)
    assert len(beats.act) == beats.groups * beats.tiles * 3
    # Build the output beats the engine would send (golden values, tile-major, one beat
    # per lane, the tile's one output in the first of the back-end's W values) and
    # assemble them back.
    want = conv2d_int8(x, params, stride=2)
    width = streams.interface.width
    assert streams.interface.output_beats == 1
    payloads = []
    for g in range(beats.groups):
        for t in range(beats.tiles):
            n, rem = divmod(t, 5 * 3)
            ty, tx = divmod(rem, 3)
            for co in range(g * 2, min(g * 2 + 2, 5)):
                last = g == beats.groups - 1 and t == beats.tiles - 1 and co == 4
                payloads += pack(
                    streams.layouts["out"],
                    {
                        "data": np.array([[want[n, co, ty, tx]] + [0] * (width - 1)]),
                        "meta.channel": np.array([co]),
                        "meta.tile": np.array([t]),
                        "meta.end": np.array([1]),
                        "meta.last": np.array([int(last)]),
                    },
                )
    got = streams.assemble(payloads, params, 2, 9, 6, stride=2)
    assert np.array_equal(got, want)
