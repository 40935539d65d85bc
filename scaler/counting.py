"""Parameter and MAC counting with fvcore, in the paper's convention and in fvcore's own.

fvcore counts one fused multiply-add as one "flop", i.e. MACs. The paper's "FLOPS" are the MACs
of convolutions and the final linear layer; fvcore's full total also counts BatchNorm and
pooling. True floating-point operations are 2 x MACs.

Counting traces real forward passes, which is slow for large variants (B7 at 600x600). Blocks
after the first of a stage are identical in configuration and input shape, so `count_model`
traces each distinct piece once (stem, the first and one repeated block of every stage, head),
all side by side in one trace, and multiplies; pieces are built on the meta device, given
memory without weight initialisation, and traced in channels_last under no_grad. The totals are those of one fvcore
pass over the whole model (tests and benchmarks/flops_speed.py check this).
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from scaler.network import MBConv, NetworkSpec, build_head, build_stem
from scaler.scaling import validate_resolution

PAPER_OPS = ("conv", "linear")  # what the paper's "FLOPS" (MACs) count

logging.getLogger("fvcore").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PartCount:
    """Params and MACs of one part of the network (stem, a stage, head)."""

    name: str
    params: int
    macs: int
    fvcore_total: int
    output_resolution: int


@dataclass(frozen=True)
class ModelCount:
    """What `count_model` measured for one network at one resolution."""

    resolution: int
    params: int
    macs: int  # paper convention: conv + linear multiply-adds
    fvcore_total: int  # fvcore's full total: adds BatchNorm and pooling
    by_operator: dict[str, int]
    parts: tuple[PartCount, ...]
    unsupported_ops: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """Floating-point operations of the paper's convention: 2 x MACs."""
        return 2 * self.macs


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a conv with odd kernel k, padding k // 2 and the given stride."""
    return (size - 1) // stride + 1


class _Pieces(nn.Module):
    """The distinct pieces of a network side by side, each fed its own input: one trace."""

    def __init__(self, pieces: list[nn.Module]) -> None:
        super().__init__()
        self.pieces = nn.ModuleList(pieces)

    def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return [piece(x) for piece, x in zip(self.pieces, inputs)]


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _analysis(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> FlopCountAnalysis:
    analysis = FlopCountAnalysis(module.eval(), inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis


@functools.lru_cache(maxsize=256)
def count_model(spec: NetworkSpec, resolution: int) -> ModelCount:
    """Count params and MACs of the network `spec` describes, at `resolution` x `resolution`.

    Cached by (spec, resolution): a search counts each configuration once.
    """
    validate_resolution(resolution)
    # (part name, module, input shape, how many times the network repeats it, output size)
    size = conv_output_size(resolution, 2)
    layout: list[tuple[str, nn.Module, tuple[int, ...], int, int]] = []
    with torch.device("meta"):
        layout.append(("stem", build_stem(spec), (1, 3, resolution, resolution), 1, size))
        for number, blocks in enumerate(spec.stage_blocks(), start=1):
            out = conv_output_size(size, blocks[0].stride)
            first, rest = blocks[0], blocks[1:]
            layout.append((f"stage{number}", MBConv(first), (1, first.cin, size, size), 1, out))
            if rest:
                shape = (1, rest[0].cin, out, out)
                layout.append((f"stage{number}", MBConv(rest[0]), shape, len(rest), out))
            size = out
        head = build_head(spec)
        layout.append(("head", head, (1, head.conv[0].in_channels, size, size), 1, 1))

    pieces = _Pieces([module for _, module, _, _, _ in layout])
    pieces.to_empty(device="cpu")  # values do not change counts: skip initialisation
    with torch.no_grad():
        for tensor in [*pieces.parameters(), *pieces.buffers()]:
            tensor.zero_()
    pieces.to(memory_format=torch.channels_last)
    inputs = tuple(
        torch.zeros(shape).to(memory_format=torch.channels_last) for _, _, shape, _, _ in layout
    )
    analysis = _analysis(pieces, inputs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_piece = analysis.by_module_and_operator()

    by_op: Counter = Counter()
    unsupported: Counter = Counter()
    parts: dict[str, PartCount] = {}
    for index, (name, module, _, times, out) in enumerate(layout):
        ops = {op: n * times for op, n in per_piece.get(f"pieces.{index}", {}).items()}
        by_op.update(ops)
        for op, n in analysis.unsupported_ops(f"pieces.{index}").items():
            unsupported[op] += n * times
        macs = sum(ops.get(k, 0) for k in PAPER_OPS)
        previous = parts.get(name, PartCount(name, 0, 0, 0, out))
        parts[name] = PartCount(
            name,
            previous.params + _params(module) * times,
            previous.macs + macs,
            previous.fvcore_total + sum(ops.values()),
            out,
        )

    return ModelCount(
        resolution=resolution,
        params=sum(p.params for p in parts.values()),
        macs=sum(p.macs for p in parts.values()),
        fvcore_total=sum(p.fvcore_total for p in parts.values()),
        by_operator=dict(by_op),
        parts=tuple(parts.values()),
        unsupported_ops=dict(unsupported),
    )


def count_whole_model(model: nn.Module, resolution: int) -> ModelCount:
    """One plain fvcore pass over a whole, real model: the reference `count_model` must match."""
    analysis = _analysis(model, (torch.randn(1, 3, resolution, resolution),))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_op = dict(analysis.by_operator())
    macs = sum(by_op.get(k, 0) for k in PAPER_OPS)
    return ModelCount(
        resolution=resolution,
        params=_params(model),
        macs=macs,
        fvcore_total=sum(by_op.values()),
        by_operator=by_op,
        parts=(),
        unsupported_ops=dict(analysis.unsupported_ops()),
    )
