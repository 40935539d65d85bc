"""ResNet-50 and MobileNetV2 reproduce torchvision's networks exactly, scale by the project's
rules, and count the same piecewise as in one whole-model fvcore pass."""

import pytest
import torch
from torch import nn

from scaler import build_model, network_spec, round_filters
from scaler.counting import count_model, count_whole_model
from scaler.errors import UsageError
from scaler.models import families, resolve_variant

TORCHVISION_PARAMS = {"resnet50": 25_557_032, "mobilenetv2": 3_504_872}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant", list(TORCHVISION_PARAMS))
def test_parameter_count_matches_torchvision(variant):
    with torch.device("meta"):
        model = build_model(variant)
    assert _params(model) == TORCHVISION_PARAMS[variant]


@pytest.mark.parametrize(
    "variant, macs, fvcore_total, published",
    [
        # torchvision's docs: ResNet-50 "4.09 GFLOPS" (MACs); Sandler et al.: 300M MAdds.
        ("resnet50", 4_089_184_256, 4_111_512_576, 4.09e9),
        ("mobilenetv2", 300_774_272, 314_193_216, 0.300e9),
    ],
)
def test_macs_at_224_match_published(variant, macs, fvcore_total, published):
    count = count_model(network_spec(variant), 224)
    assert count.macs == macs
    assert count.fvcore_total == fvcore_total
    assert count.macs == pytest.approx(published, rel=0.01)
    assert resolve_variant(variant)[1].paper_macs == published


def test_resnet_scales_depth_per_stage_and_width_everywhere():
    spec = network_spec("resnet50", width=1.2, depth=1.5)
    stages = spec.scaled_stages()
    assert [s.repeats for s in stages] == [5, 6, 9, 5]  # ceil(1.5 * [3, 4, 6, 3])
    assert [s.channels for s in stages] == [80, 152, 304, 616]  # round_filters(c, 1.2)
    assert spec.scaled_stem == 80
    assert spec.features == 616 * 4
    with torch.device("meta"):
        model = build_model("resnet50", width=1.2, depth=1.5)
    assert [len(stage) for stage in model.stages] == [5, 6, 9, 5]
    assert model.stem[0].out_channels == 80
    assert model.head.classifier.in_features == 2464
    assert _params(model) == 54_804_824


def test_resnet_layout_is_torchvision_v1_5():
    with torch.device("meta"):
        model = build_model("resnet50")
    assert [len(stage) for stage in model.stages] == [3, 4, 6, 3]
    first = model.stages[1][0]
    assert [m.stride[0] for m in first.block if isinstance(m, nn.Conv2d)] == [1, 2, 1]
    assert isinstance(model.stages[0][0].shortcut, nn.Sequential)  # 64 -> 256 projection
    assert isinstance(model.stages[0][1].shortcut, nn.Identity)
    assert [s.channels * 4 for s in network_spec("resnet50").scaled_stages()] == [256, 512, 1024, 2048]


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding for MobileNetV2, restated to compare with round_filters."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def test_round_filters_is_torchvisions_make_divisible():
    for channels in (16, 24, 32, 64, 96, 160, 320, 1280):
        for width in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 2.0):
            assert round_filters(channels, width) == _make_divisible(channels * width)


@pytest.mark.parametrize(
    "width, stem, channels, head",
    [
        (1.0, 32, [16, 24, 32, 64, 96, 160, 320], 1280),
        (1.4, 48, [24, 32, 48, 88, 136, 224, 448], 1792),
        (0.5, 16, [8, 16, 16, 32, 48, 80, 160], 1280),  # the head never narrows below 1280
    ],
)
def test_mobilenetv2_width_rounding(width, stem, channels, head):
    spec = network_spec("mobilenetv2", width=width)
    assert spec.scaled_stem == stem
    assert [s.channels for s in spec.scaled_stages()] == channels
    assert spec.scaled_head == head


def test_mobilenetv2_depth_rounds_up_per_stage():
    spec = network_spec("mobilenetv2", depth=1.5)
    assert [s.repeats for s in spec.scaled_stages()] == [2, 3, 5, 6, 5, 5, 2]


@pytest.mark.parametrize(
    "variant, width, depth, classes, resolution",
    [
        ("resnet50", None, None, 1000, 224),
        ("resnet50", 1.2, 1.5, 1000, 260),
        ("resnet50", 0.5, 0.7, 10, 97),
        ("mobilenetv2", None, None, 1000, 224),
        ("mobilenetv2", 1.4, 1.3, 10, 97),
        ("mobilenetv2", 0.5, 1.5, 7, 65),
    ],
)
def test_piecewise_count_equals_one_whole_fvcore_pass(variant, width, depth, classes, resolution):
    spec = network_spec(variant, width=width, depth=depth, num_classes=classes)
    fast = count_model(spec, resolution)
    model = build_model(variant, width=width, depth=depth, num_classes=classes)
    whole = count_whole_model(model, resolution)
    assert fast.by_operator == whole.by_operator
    assert (fast.macs, fast.fvcore_total, fast.params) == (whole.macs, whole.fvcore_total, whole.params)
    assert fast.unsupported_ops == whole.unsupported_ops


@pytest.mark.parametrize(
    "variant, resolution, parts, sides",
    [
        ("resnet50", 224, ["stem", "stage1", "stage2", "stage3", "stage4", "head"], [56, 56, 28, 14, 7, 1]),
        ("resnet50", 97, ["stem", "stage1", "stage2", "stage3", "stage4", "head"], [25, 25, 13, 7, 4, 1]),
        (
            "mobilenetv2",
            97,
            ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head"],
            [49, 49, 25, 13, 7, 7, 4, 4, 1],
        ),
    ],
)
def test_parts_sum_to_total(variant, resolution, parts, sides):
    count = count_model(network_spec(variant), resolution)
    assert [p.name for p in count.parts] == parts
    assert [p.output_resolution for p in count.parts] == sides
    assert sum(p.params for p in count.parts) == TORCHVISION_PARAMS[variant]
    assert sum(p.macs for p in count.parts) == count.macs


@pytest.mark.parametrize("variant", ["mobilenetv2", "resnet50"])
def test_forward_gives_one_row_of_logits_per_image(variant):
    model = build_model(variant, width=0.5 if variant == "resnet50" else None, num_classes=10)
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)


def test_initialisation_is_torchvisions():
    model = build_model("mobilenetv2", width=0.5, num_classes=10)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in norms)
    assert float(model.head.classifier.weight.detach().std()) == pytest.approx(0.01, rel=0.1)
    assert bool((model.head.classifier.bias == 0).all())
    resnet = build_model("resnet50", width=0.5, depth=0.4, num_classes=10)
    conv = resnet.stages[3][0].block[3]  # 3x3 conv: fan_out = 256 * 9
    assert float(conv.weight.detach().std()) == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.05)
    last_bn = resnet.stages[3][0].block[-1]
    assert bool((last_bn.weight == 1).all())  # no zero-init of the last gamma, as torchvision


def test_every_registered_preset_is_named_in_the_help_of_the_commands_that_take_one(cli):
    presets = [p for family in families() for p in family.presets]
    assert {"b0", "l2", "resnet50", "mobilenetv2"} <= set(presets)
    for command in ("flops", "train"):
        shown = " ".join(cli(command, "--help").out.split())
        assert all(f" {p}," in shown or f" {p};" in shown or f" {p})" in shown for p in presets), shown


def test_presets_aliases_and_dropout():
    assert resolve_variant("ResNet-50")[1].name == "resnet50"
    assert resolve_variant("mobilenet_v2")[1].name == "mobilenetv2"
    assert network_spec("resnet50").dropout == 0.0  # torchvision's ResNet has none
    assert network_spec("resnet50", dropout=0.3).dropout == 0.3
    assert network_spec("mobilenetv2").dropout == 0.2
    for variant in ("b0", "resnet50", "mobilenetv2"):  # a probability, refused in one line before torch sees it
        for bad in (-0.5, 1.0, float("nan")):
            with pytest.raises(UsageError, match=r"dropout = .* is not allowed; it must be a number in \[0, 1\)"):
                network_spec(variant, dropout=bad)


@pytest.mark.parametrize("variant", ["resnet50", "mobilenetv2"])
def test_arguments_are_validated(variant):
    with pytest.raises(UsageError):
        network_spec(variant, width=0)
    with pytest.raises(UsageError):
        network_spec(variant, depth=float("nan"))
    with pytest.raises(UsageError):
        network_spec(variant, num_classes=0)


@pytest.mark.parametrize("variant, block_type, blocks", [
    ("b0", "MBConv", 9),  # the stride-1 blocks with unchanged channels
    ("mobilenetv2", "InvertedResidual", 10),
    ("resnet50", "Bottleneck", 16),  # every bottleneck adds its branch to a shortcut
])
def test_zero_init_makes_every_residual_block_start_as_its_shortcut(variant, block_type, blocks):
    from scaler.candidates import ProxyBase

    torch.manual_seed(0)
    model = ProxyBase(variant, 32, 1.0).build().eval()
    residual = [m for m in model.modules() if type(m).__name__ == block_type
                and (getattr(m, "use_residual", True))]
    assert len(residual) == blocks
    x = torch.rand(2, 1, 8, 8)  # non-negative: a ResNet block ends in ReLU
    for block in residual:
        cin = next(c for c in block.modules() if isinstance(c, nn.Conv2d)).in_channels
        inputs = x.expand(2, cin, 8, 8).contiguous()
        if variant == "resnet50" and not isinstance(block.shortcut, nn.Identity):
            continue  # a projection shortcut is not the identity; its branch still starts at zero
        assert torch.equal(block(inputs), inputs)
    # Without zero_init (and in a configuration stored before it existed) the branches start live.
    for plain in (ProxyBase(variant, 32, 0.25, zero_init=False), ProxyBase.from_dict(
            {"variant": variant, "resolution": 32, "width": 1.0, "num_classes": 10})):
        assert not plain.zero_init
        block = next(m for m in plain.build().eval().modules() if type(m).__name__ == block_type
                     and getattr(m, "use_residual", True))
        cin = next(c for c in block.modules() if isinstance(c, nn.Conv2d)).in_channels
        inputs = x.expand(2, cin, 8, 8).contiguous()
        assert not torch.equal(block(inputs), inputs)
