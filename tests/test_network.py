"""The network reproduces the official EfficientNet exactly and scales by the official rules."""

import math
import re

import numpy
import pytest
import torch

from scaler import build_model, network_spec, round_filters, round_repeats
from scaler.errors import UsageError
from scaler.models.efficientnet import SqueezeExcite
from scaler.scaling import round_resolution

OFFICIAL_PARAMS = {
    "b0": 5_288_548,
    "b1": 7_794_184,
    "b2": 9_109_994,
    "b3": 12_233_232,
    "b4": 19_341_616,
    "b5": 30_389_784,
    "b6": 43_040_704,
    "b7": 66_347_960,
}


@pytest.mark.parametrize("variant", list(OFFICIAL_PARAMS))
def test_parameter_count_matches_official(variant):
    with torch.device("meta"):
        model = build_model(variant)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[variant]


@pytest.mark.parametrize(
    "width, stem, channels, head",
    [
        (1.0, 32, [16, 24, 40, 80, 112, 192, 320], 1280),
        (1.1, 32, [16, 24, 48, 88, 120, 208, 352], 1408),
        (1.2, 40, [24, 32, 48, 96, 136, 232, 384], 1536),
        (2.0, 64, [32, 48, 80, 160, 224, 384, 640], 2560),
    ],
)
def test_round_filters_official_examples(width, stem, channels, head):
    spec = network_spec(width=width)
    assert spec.scaled_stem == stem
    assert [s.channels for s in spec.scaled_stages()] == channels
    assert spec.scaled_head == head
    model = build_model(width=width, num_classes=10)
    assert model.stem[0].out_channels == stem
    assert model.head.conv[0].out_channels == head


def test_round_filters_never_drops_more_than_ten_percent():
    for channels in (8, 16, 24, 32, 40, 80, 112, 192, 320, 1280):
        for width in (0.25, 0.5, 0.75, 1.0, 1.1, 1.3, 1.7, 2.2, 4.3):
            n = round_filters(channels, width)
            assert n % 8 == 0 and n >= 8
            assert n >= 0.9 * channels * width


def test_resolution_rounds_to_the_nearest_multiple_of_4_halves_up():
    assert [round_resolution(r) for r in (76.8, 89.6, 257.6, 225.9, 226.0, 230.0, 1.0)] == [76, 88, 256, 224, 228, 232, 4]


def test_rounding_rules_and_builders_refuse_what_is_not_a_positive_number():
    """Python API calls get a UsageError that names the argument, not a TypeError from torch
    or a ValueError from int() several frames down."""
    for call, message in [
        (lambda: round_filters(32, math.nan), "width = nan is not allowed; it must be a number > 0"),
        (lambda: round_repeats(2, -1.0), "depth = -1.0 is not allowed; it must be a number > 0"),
        (lambda: round_resolution(math.inf), "resolution = inf is not allowed; it must be a number > 0"),
        (lambda: build_model(num_classes=1.5), "classes = 1.5 is not allowed; it must be 1..100,000"),
        (lambda: build_model(num_classes=True), "classes = True is not allowed"),
        (lambda: build_model(width="1"), "width = '1' is not allowed; it must be a number in (0, 16]"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            call()
    assert round_filters(32, numpy.float64(1.1)) == 32 and [*build_model(num_classes=numpy.int64(3), width=0.25, depth=0.25).modules()][-1].out_features == 3


def test_depth_rounds_up_per_stage():
    assert round_repeats(3, 1.1) == 4
    assert round_repeats(1, 1.0) == 1
    assert [s.repeats for s in network_spec("b7").scaled_stages()] == [4, 7, 7, 10, 10, 13, 4]


def test_block_structure_follows_reference():
    model = build_model("b0")
    first, second = model.stages[1][0], model.stages[1][1]
    assert first.block[1][0].stride == (2, 2) and second.block[1][0].stride == (1, 1)
    assert not first.use_residual and second.use_residual
    # Squeeze width from the block's input channels (16 // 4), not the expanded 96.
    assert first.block[2].reduce.out_channels == 4
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bn.eps == 1e-3 and bn.momentum == 0.01 for bn in bns)
    # every convolution is bias-free except squeeze-excitation's two, which have one (as the official)
    excite = {id(c) for m in model.modules() if isinstance(m, SqueezeExcite) for c in (m.reduce, m.expand)}
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(excite) == 2 * 16 and all((c.bias is not None) == (id(c) in excite) for c in convs)
    rates = [b.drop_path for stage in model.stages for b in stage]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert all(b > a for a, b in zip(rates, rates[1:]))


def test_presets_and_overrides():
    assert network_spec("b4").dropout == 0.4
    spec = network_spec("b4", width=1.0)
    assert spec.width == 1.0 and spec.depth == 1.8
    model = build_model(width=1.2, depth=1.4, num_classes=10)
    assert model.head.classifier.out_features == 10
    out = model.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"variant": "b9"},
        {"width": 0.0},
        {"depth": -1.0},
        {"num_classes": 0},
    ],
)
def test_bad_arguments_raise_usage_error(kwargs):
    with pytest.raises(UsageError):
        network_spec(**kwargs)
