"""MobileNetV2 in plain PyTorch, built from a stage specification, and its family entry.

The layout is torchvision's (Sandler et al. 2018): a 3x3 stride-2 stem, seven stages of
inverted residual blocks (expand 1x1, depthwise 3x3, linear 1x1 projection, ReLU6), a 1x1 conv
to the head width, global average pooling, dropout and a linear classifier. At
width = depth = 1 it has exactly torchvision's 3,504,872 parameters (1000 classes).

Channels are rounded with `round_filters`, which is torchvision's `_make_divisible(c * width,
8)` to the letter (both: the nearest multiple of 8, at least 8, plus 8 when that falls more
than 10% below). As in torchvision, the head never narrows below 1280 (it scales by
max(1, width)). Depth, which torchvision does not have, multiplies every stage's repeats
(rounded up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from scaler.models.family import Family, Piece, Preset, spec_maker, staged_pieces
from scaler.models.registry import register_family
from scaler.scaling import conv_output_size, round_filters, round_repeats


@dataclass(frozen=True)
class StageSpec:
    """One stage of inverted residuals before scaling: the paper's t, c, n, s."""

    expand: int
    channels: int
    repeats: int
    stride: int


BASE_STAGES: tuple[StageSpec, ...] = (
    StageSpec(expand=1, channels=16, repeats=1, stride=1),
    StageSpec(expand=6, channels=24, repeats=2, stride=2),
    StageSpec(expand=6, channels=32, repeats=3, stride=2),
    StageSpec(expand=6, channels=64, repeats=4, stride=2),
    StageSpec(expand=6, channels=96, repeats=3, stride=1),
    StageSpec(expand=6, channels=160, repeats=3, stride=2),
    StageSpec(expand=6, channels=320, repeats=1, stride=1),
)
BASE_STEM_CHANNELS = 32
BASE_HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class BlockSpec:
    """One inverted residual as built: channels in and out, expansion, stride."""

    cin: int
    cout: int
    expand: int
    stride: int


@dataclass(frozen=True)
class NetworkSpec:
    """A whole MobileNetV2: the base stages plus width/depth multipliers and the classifier."""

    family: ClassVar[str] = "mobilenetv2"

    width: float = 1.0
    depth: float = 1.0
    num_classes: int = 1000
    dropout: float = 0.2
    stages: tuple[StageSpec, ...] = field(default=BASE_STAGES)
    stem_channels: int = BASE_STEM_CHANNELS
    head_channels: int = BASE_HEAD_CHANNELS

    def scaled_stages(self) -> list[StageSpec]:
        """The stages after the width (round_filters) and depth (ceil) rules."""
        return [
            StageSpec(
                s.expand,
                round_filters(s.channels, self.width),
                round_repeats(s.repeats, self.depth),
                s.stride,
            )
            for s in self.stages
        ]

    def stage_blocks(self) -> list[list[BlockSpec]]:
        """Every block of every scaled stage; a stage's stride applies to its first block."""
        cin, layout = self.scaled_stem, []
        for stage in self.scaled_stages():
            blocks = []
            for i in range(stage.repeats):
                blocks.append(BlockSpec(cin, stage.channels, stage.expand, stage.stride if i == 0 else 1))
                cin = stage.channels
            layout.append(blocks)
        return layout

    @property
    def scaled_stem(self) -> int:
        return round_filters(self.stem_channels, self.width)

    @property
    def scaled_head(self) -> int:
        """The head widens with width > 1 but keeps its base width below (torchvision's rule)."""
        return round_filters(self.head_channels, max(1.0, self.width))


class ConvBNReLU6(nn.Sequential):
    """Bias-free convolution (padding kernel // 2), BatchNorm, and ReLU6 unless `act` is False."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """Expand 1x1 (skipped when t = 1), depthwise 3x3, linear 1x1 projection; the identity
    shortcut where stride is 1 and the channels stay the same."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        hidden = spec.cin * spec.expand
        layers: list[nn.Module] = []
        if spec.expand != 1:
            layers.append(ConvBNReLU6(spec.cin, hidden, 1))
        layers += [
            ConvBNReLU6(hidden, hidden, 3, spec.stride, groups=hidden),
            ConvBNReLU6(hidden, spec.cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = spec.stride == 1 and spec.cin == spec.cout

    def zero_init_last(self) -> None:
        """Start the residual branch at zero (its last BatchNorm scale 0), so that the block
        begins as its shortcut (see `scaler.models.init`)."""
        if self.use_residual:
            nn.init.zeros_(self.block[-1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


class Head(nn.Module):
    """1x1 conv to the head width, global average pooling, dropout and the linear classifier."""

    def __init__(self, cin: int, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv = ConvBNReLU6(cin, channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.conv(x)).flatten(1)))


def build_stem(spec: NetworkSpec) -> ConvBNReLU6:
    """The stem: 3x3 stride-2 conv from RGB to the scaled stem width."""
    return ConvBNReLU6(3, spec.scaled_stem, 3, stride=2)


def build_head(spec: NetworkSpec) -> Head:
    """The head that follows the last stage."""
    return Head(spec.scaled_stages()[-1].channels, spec.scaled_head, spec.num_classes, spec.dropout)


class MobileNetV2(nn.Module):
    """The network a `NetworkSpec` describes; `spec` stays attached for counting and reports."""

    graph_safe = True  # its training step may be replayed as a CUDA graph (scaler.graphed_step)

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = build_stem(spec)
        self.stages = nn.ModuleList(
            nn.Sequential(*(InvertedResidual(block) for block in blocks))
            for blocks in spec.stage_blocks()
        )
        self.head = build_head(spec)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's: He-normal (fan out) convs, BatchNorm 1 / 0, classifier N(0, 0.01).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


PRESETS: dict[str, Preset] = {
    # Sandler et al. 2018, Table 4: 3.4M params, 300M multiply-adds (torchvision lists 3.5M).
    "mobilenetv2": Preset("mobilenetv2", 1.0, 1.0, 224, 0.2, 3.4e6, 300e6, "Sandler et al. 2018, Table 4"),
}


mobilenetv2_spec = spec_maker(NetworkSpec)


def mobilenetv2_pieces(spec: NetworkSpec, resolution: int) -> list[Piece]:
    """Stem, the first and one repeated inverted residual of every stage, and the head."""
    return staged_pieces(
        resolution,
        lambda: build_stem(spec),
        conv_output_size(resolution, 2),
        spec.stage_blocks(),
        InvertedResidual,
        lambda: build_head(spec),
        spec.scaled_stages()[-1].channels,
    )


def _alias(name: str) -> str:
    return name.replace("-", "").replace("_", "")  # mobilenet_v2, mobilenet-v2


FAMILY = register_family(
    Family(
        name="mobilenetv2",
        presets=PRESETS,
        spec=mobilenetv2_spec,
        build=MobileNetV2,
        pieces=mobilenetv2_pieces,
        aliases=_alias,
    )
)
