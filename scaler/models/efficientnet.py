"""EfficientNet in plain PyTorch, built from a stage specification, and its family entry.

The architecture is data (`StageSpec`, `NetworkSpec`, the official `PRESETS`); the network
below reads top to bottom: stem, seven MBConv stages, head, pooling, classifier. Resolution is
not part of the module: it is whatever size the input has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from scaler.models.family import Family, Piece, Preset, spec_maker, staged_pieces
from scaler.models.registry import register_family
from scaler.scaling import conv_output_size, round_filters, round_repeats

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention; TensorFlow's 0.99
SE_RATIO = 0.25


@dataclass(frozen=True)
class StageSpec:
    """One stage of MBConv blocks before scaling: expansion, kernel, stride, repeats, channels."""

    expand: int
    kernel: int
    stride: int
    repeats: int
    channels: int


B0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(expand=1, kernel=3, stride=1, repeats=1, channels=16),
    StageSpec(expand=6, kernel=3, stride=2, repeats=2, channels=24),
    StageSpec(expand=6, kernel=5, stride=2, repeats=2, channels=40),
    StageSpec(expand=6, kernel=3, stride=2, repeats=3, channels=80),
    StageSpec(expand=6, kernel=5, stride=1, repeats=3, channels=112),
    StageSpec(expand=6, kernel=5, stride=2, repeats=4, channels=192),
    StageSpec(expand=6, kernel=3, stride=1, repeats=1, channels=320),
)
B0_STEM_CHANNELS = 32
B0_HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block as built: channels in and out, expansion, kernel, stride, drop rate."""

    cin: int
    cout: int
    expand: int
    kernel: int
    stride: int
    drop_path: float


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: the base stages plus width/depth multipliers and the classifier."""

    family: ClassVar[str] = "efficientnet"

    width: float = 1.0
    depth: float = 1.0
    num_classes: int = 1000
    dropout: float = 0.2
    stochastic_depth: float = 0.2
    stages: tuple[StageSpec, ...] = field(default=B0_STAGES)
    stem_channels: int = B0_STEM_CHANNELS
    head_channels: int = B0_HEAD_CHANNELS

    def scaled_stages(self) -> list[StageSpec]:
        """The stages after the width (round_filters) and depth (ceil) rules."""
        return [
            StageSpec(
                s.expand,
                s.kernel,
                s.stride,
                round_repeats(s.repeats, self.depth),
                round_filters(s.channels, self.width),
            )
            for s in self.stages
        ]

    def stage_blocks(self) -> list[list[BlockSpec]]:
        """Every block of every scaled stage, with its input channels, stride and drop rate.

        The stride applies to a stage's first block only; stochastic depth rises linearly
        from 0 (first block of the network) to the full rate (last block).
        """
        stages = self.scaled_stages()
        last = max(1, sum(s.repeats for s in stages) - 1)
        cin, index, layout = self.scaled_stem, 0, []
        for stage in stages:
            blocks = []
            for i in range(stage.repeats):
                rate = self.stochastic_depth * index / last
                stride = stage.stride if i == 0 else 1
                blocks.append(
                    BlockSpec(cin, stage.channels, stage.expand, stage.kernel, stride, rate)
                )
                cin, index = stage.channels, index + 1
            layout.append(blocks)
        return layout

    @property
    def scaled_stem(self) -> int:
        return round_filters(self.stem_channels, self.width)

    @property
    def scaled_head(self) -> int:
        return round_filters(self.head_channels, self.width)


class ConvBNAct(nn.Sequential):
    """Convolution without bias, BatchNorm, and SiLU unless `act` is False."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if act:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: pool, squeeze to `squeeze` channels, SiLU, expand, sigmoid gate."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.SiLU(inplace=True)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBConv(nn.Module):
    """Inverted residual block: expand 1x1, depthwise kxk, squeeze-excite, project 1x1.

    The squeeze width comes from the block's input channels, as in the official code. The
    identity shortcut (stride 1, same channels) carries stochastic depth at rate `drop_path`.
    """

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        hidden = spec.cin * spec.expand
        layers: list[nn.Module] = []
        if spec.expand != 1:
            layers.append(ConvBNAct(spec.cin, hidden, 1))
        layers += [
            ConvBNAct(hidden, hidden, spec.kernel, spec.stride, groups=hidden),
            SqueezeExcite(hidden, max(1, int(spec.cin * SE_RATIO))),
            ConvBNAct(hidden, spec.cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = spec.stride == 1 and spec.cin == spec.cout
        self.drop_path = spec.drop_path

    def zero_init_last(self) -> None:
        """Start the residual branch at zero (its last BatchNorm scale 0), so that the block
        begins as its shortcut (see `scaler.models.init`)."""
        if self.use_residual:
            nn.init.zeros_(self.block[-1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if not self.use_residual:
            return out
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = out.new_empty((out.shape[0], 1, 1, 1)).bernoulli_(keep)
            out = out * mask.div_(keep)
        return out + x


class Head(nn.Module):
    """1x1 conv to the head width, global average pooling, dropout and the linear classifier."""

    def __init__(self, cin: int, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv = ConvBNAct(cin, channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout, inplace=True)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.conv(x)).flatten(1)))


def build_stem(spec: NetworkSpec) -> ConvBNAct:
    """The stem: 3x3 stride-2 conv from RGB to the scaled stem width."""
    return ConvBNAct(3, spec.scaled_stem, 3, stride=2)


def build_head(spec: NetworkSpec) -> Head:
    """The head that follows the last stage."""
    return Head(spec.scaled_stages()[-1].channels, spec.scaled_head, spec.num_classes, spec.dropout)


class EfficientNet(nn.Module):
    """The network a `NetworkSpec` describes; `spec` stays attached for counting and reports."""

    graph_safe = True  # its training step may be replayed as a CUDA graph (scaler.graphed_step)

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = build_stem(spec)
        self.stages = nn.ModuleList(
            nn.Sequential(*(MBConv(block) for block in blocks)) for blocks in spec.stage_blocks()
        )
        self.head = build_head(spec)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                # Small classifier weights (as torchvision's MobileNets): the official
                # uniform(+-1/sqrt(classes)) is 10x larger for a 10-class proxy than for
                # ImageNet and cost a short proxy its first epoch (measured: 64 px top-1
                # 0.108 -> 0.182, 128 px 0.230 -> 0.314 after 3 epochs).
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


PAPER = "Tan & Le 2019, Table 2 (FLOPS there are MACs)"
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (  # name, width, depth, resolution, dropout, paper's params, paper's "FLOPS" (MACs)
        Preset("b0", 1.0, 1.0, 224, 0.2, 5.3e6, 0.39e9, PAPER),
        Preset("b1", 1.0, 1.1, 240, 0.2, 7.8e6, 0.70e9, PAPER),
        Preset("b2", 1.1, 1.2, 260, 0.3, 9.2e6, 1.0e9, PAPER),
        Preset("b3", 1.2, 1.4, 300, 0.3, 12e6, 1.8e9, PAPER),
        Preset("b4", 1.4, 1.8, 380, 0.4, 19e6, 4.2e9, PAPER),
        Preset("b5", 1.6, 2.2, 456, 0.4, 30e6, 9.9e9, PAPER),
        Preset("b6", 1.8, 2.6, 528, 0.5, 43e6, 19e9, PAPER),
        Preset("b7", 2.0, 3.1, 600, 0.5, 66e6, 37e9, PAPER),
        Preset("b8", 2.2, 3.6, 672, 0.5),
        Preset("l2", 4.3, 5.3, 800, 0.5),
    )
}  # Tan & Le 2019, Table 2 (printed figures) and the official implementation's table


efficientnet_spec = spec_maker(NetworkSpec)


def efficientnet_pieces(spec: NetworkSpec, resolution: int) -> list[Piece]:
    """Stem, the first and one repeated MBConv block of every stage, and the head."""
    return staged_pieces(
        resolution,
        lambda: build_stem(spec),
        conv_output_size(resolution, 2),
        spec.stage_blocks(),
        MBConv,
        lambda: build_head(spec),
        spec.scaled_stages()[-1].channels,
    )


def _alias(name: str) -> str:
    return name.removeprefix("efficientnet-").removeprefix("efficientnet_")


FAMILY = register_family(
    Family(
        name="efficientnet",
        presets=PRESETS,
        spec=efficientnet_spec,
        build=EfficientNet,
        pieces=efficientnet_pieces,
        aliases=_alias,
    )
)
