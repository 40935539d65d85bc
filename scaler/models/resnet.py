"""ResNet with bottleneck blocks in plain PyTorch, built from a stage specification, and its
family entry.

The layout is torchvision's ResNet-50 ("v1.5": the stride sits on the 3x3 conv, not the first
1x1): a 7x7 stride-2 stem with 3x3 max pooling, four stages of bottlenecks, global average
pooling and a linear classifier. At width = depth = 1 it has exactly torchvision's 25,557,032
parameters (1000 classes).

Scaling follows the project's rules (`scaler.scaling`): depth multiplies the bottlenecks of
every stage (rounded up), width multiplies the stem and every stage's bottleneck width (the
official channel rounding); a block's output is its bottleneck width times the expansion 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from scaler.models.family import Family, Piece, Preset, spec_maker, staged_pieces
from scaler.models.registry import register_family
from scaler.scaling import conv_output_size, round_filters, round_repeats

EXPANSION = 4  # a bottleneck's output channels per channel of its 3x3 conv


@dataclass(frozen=True)
class StageSpec:
    """One stage of bottlenecks before scaling: repeats, bottleneck width, stride."""

    repeats: int
    channels: int
    stride: int


RESNET50_STAGES: tuple[StageSpec, ...] = (
    StageSpec(repeats=3, channels=64, stride=1),
    StageSpec(repeats=4, channels=128, stride=2),
    StageSpec(repeats=6, channels=256, stride=2),
    StageSpec(repeats=3, channels=512, stride=2),
)
RESNET50_STEM_CHANNELS = 64


@dataclass(frozen=True)
class BlockSpec:
    """One bottleneck as built: channels in, bottleneck width, channels out, stride."""

    cin: int
    width: int
    cout: int
    stride: int

    @property
    def downsample(self) -> bool:
        """Whether the shortcut needs a 1x1 projection (shape changes), as in torchvision."""
        return self.stride != 1 or self.cin != self.cout


@dataclass(frozen=True)
class NetworkSpec:
    """A whole ResNet: the base stages plus width/depth multipliers and the classifier.

    `dropout` before the classifier is 0 by default (torchvision's ResNet has none); it is
    there so a short proxy run can ask for it like any other family.
    """

    family: ClassVar[str] = "resnet"

    width: float = 1.0
    depth: float = 1.0
    num_classes: int = 1000
    dropout: float = 0.0
    stages: tuple[StageSpec, ...] = field(default=RESNET50_STAGES)
    stem_channels: int = RESNET50_STEM_CHANNELS

    def scaled_stages(self) -> list[StageSpec]:
        """The stages after the depth (ceil) and width (round_filters) rules."""
        return [
            StageSpec(round_repeats(s.repeats, self.depth), round_filters(s.channels, self.width), s.stride)
            for s in self.stages
        ]

    def stage_blocks(self) -> list[list[BlockSpec]]:
        """Every bottleneck of every scaled stage; a stage's stride applies to its first block."""
        cin, layout = self.scaled_stem, []
        for stage in self.scaled_stages():
            cout = stage.channels * EXPANSION
            blocks = []
            for i in range(stage.repeats):
                blocks.append(BlockSpec(cin, stage.channels, cout, stage.stride if i == 0 else 1))
                cin = cout
            layout.append(blocks)
        return layout

    @property
    def scaled_stem(self) -> int:
        return round_filters(self.stem_channels, self.width)

    @property
    def features(self) -> int:
        """Channels the classifier sees: the last stage's output."""
        return self.scaled_stages()[-1].channels * EXPANSION


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """A bias-free convolution (padding kernel // 2) and its BatchNorm, torchvision's defaults."""
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]


class Stem(nn.Sequential):
    """7x7 stride-2 conv, BatchNorm, ReLU and 3x3 stride-2 max pooling: a quarter of the side."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            *conv_bn(3, channels, 7, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand, plus the shortcut, then ReLU.

    The shortcut is the identity, or a strided 1x1 conv + BatchNorm where the shape changes.
    """

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.block = nn.Sequential(
            *conv_bn(spec.cin, spec.width, 1),
            nn.ReLU(inplace=True),
            *conv_bn(spec.width, spec.width, 3, spec.stride),
            nn.ReLU(inplace=True),
            *conv_bn(spec.width, spec.cout, 1),
        )
        self.shortcut = (
            nn.Sequential(*conv_bn(spec.cin, spec.cout, 1, spec.stride))
            if spec.downsample
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        """Start the residual branch at zero (its last BatchNorm scale 0), so that the block
        begins as its shortcut (see `scaler.models.init`)."""
        nn.init.zeros_(self.block[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.block(x) + self.shortcut(x))


class Head(nn.Module):
    """Global average pooling, dropout and the linear classifier."""

    def __init__(self, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(x).flatten(1)))


def build_head(spec: NetworkSpec) -> Head:
    """The head that follows the last stage."""
    return Head(spec.features, spec.num_classes, spec.dropout)


class ResNet(nn.Module):
    """The network a `NetworkSpec` describes; `spec` stays attached for counting and reports."""

    graph_safe = True  # its training step may be replayed as a CUDA graph (scaler.graphed_step)

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = Stem(spec.scaled_stem)
        self.stages = nn.ModuleList(
            nn.Sequential(*(Bottleneck(block) for block in blocks)) for blocks in spec.stage_blocks()
        )
        self.head = build_head(spec)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's: He-normal (fan out) convs, BatchNorm 1 / 0, PyTorch's default Linear.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


PRESETS: dict[str, Preset] = {
    # torchvision's model docs for ResNet-50 (v1.5): 25.6M params, "4.09 GFLOPS" (which are
    # MACs). He et al. 2015 print 3.8e9 for the v1 layout (stride on the first 1x1), a
    # different network. ResNet-101/152 ([3, 4, 23, 3], [3, 8, 36, 3]) are not presets: no
    # single depth multiplier of [3, 4, 6, 3] gives them.
    "resnet50": Preset("resnet50", 1.0, 1.0, 224, None, 25.6e6, 4.09e9, "torchvision's model table"),
}


resnet_spec = spec_maker(NetworkSpec)


def resnet_pieces(spec: NetworkSpec, resolution: int) -> list[Piece]:
    """Stem, the first and one repeated bottleneck of every stage, and the head."""
    return staged_pieces(
        resolution,
        lambda: Stem(spec.scaled_stem),
        conv_output_size(conv_output_size(resolution, 2), 2),  # stride-2 conv, then max pool
        spec.stage_blocks(),
        Bottleneck,
        lambda: build_head(spec),
        spec.features,
    )


def _alias(name: str) -> str:
    return name.replace("-", "").replace("_", "")  # resnet-50, resnet_50


FAMILY = register_family(
    Family(
        name="resnet",
        presets=PRESETS,
        spec=resnet_spec,
        build=ResNet,
        pieces=resnet_pieces,
        aliases=_alias,
    )
)
