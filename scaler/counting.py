"""Parameter and MAC counting with fvcore, in the paper's convention and in fvcore's own,
for a network of any registered family.

fvcore counts one fused multiply-add as one "flop", i.e. MACs. The paper's "FLOPS" are the MACs
of convolutions and the final linear layer; fvcore's full total also counts BatchNorm and adaptive
average pooling. True floating-point operations are 2 x MACs.

Counting traces real forward passes, which is slow for large networks (B7 at 600x600). A family
that declares its distinct pieces (for EfficientNet: stem, the first and one repeated block of
every stage, head) has each traced once, all side by side in one trace, and multiplied; pieces
are built on the meta device, given memory without weight initialisation, and traced in
channels_last under no_grad. Other networks get one whole-model pass. Both give the totals of
one plain fvcore pass over the whole model (tests and benchmarks/flops_speed.py check this).
"""

from __future__ import annotations

import functools
import math
import logging
import warnings
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from scaler.models import Piece, check_network, family_of
from scaler.errors import UsageError
from scaler.scaling import validate_resolution

PAPER_OPS = ("conv", "linear")  # what the paper's "FLOPS" (MACs) count
# Largest feature map a piece may take (512 MiB in fp32; its block expands it further).
MAX_FEATURE_VALUES = 2**27

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
    fvcore_total: int  # fvcore's full total: adds BatchNorm and adaptive average pooling
    by_operator: dict[str, int]
    parts: tuple[PartCount, ...]
    unsupported_ops: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """Floating-point operations of the paper's convention: 2 x MACs."""
        return 2 * self.macs


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
def count_model(spec: Hashable, resolution: int) -> ModelCount:
    """Count params and MACs of the network `spec` describes, at `resolution` x `resolution`.

    Piecewise where the spec's family declares pieces, one whole-model pass otherwise. Cached
    by (spec, resolution): a search counts each configuration once.
    """
    validate_resolution(resolution)
    check_network(spec, resolution)
    family = family_of(spec)
    if family.pieces is None:
        try:  # on the meta device: no memory for weights that are never read
            with torch.device("meta"):
                model = _materialise(family.build(spec))
            return count_whole_model(model, resolution)
        except Exception:  # a factory that reads a tensor's value while it builds (.item()), or keeps a
            # plain tensor attribute (left on the meta device by _materialise), needs a real build
            return count_whole_model(family.build(spec), resolution)
    return _count_pieces(family.pieces(spec, resolution), resolution)


def check_countable(spec: Hashable, resolution: int) -> None:
    """UsageError, before any counting, where `count_model` would refuse: a resolution out of
    range, a network that cannot run at it (`check_network`), or a piece too large to trace
    (its layout is built on the meta device: cheap)."""
    validate_resolution(resolution)
    check_network(spec, resolution)
    family = family_of(spec)
    if family.pieces is not None:
        _check_size(family.pieces(spec, resolution), resolution)


def _check_size(layout: list[Piece], resolution: int) -> None:
    largest = max(layout, key=lambda p: math.prod(p.input_shape))
    if math.prod(largest.input_shape) > MAX_FEATURE_VALUES:
        shape = "x".join(map(str, largest.input_shape[1:]))
        raise UsageError(
            f"this network is too large to count here: its {largest.part} sees a {shape} feature map "
            f"(over {MAX_FEATURE_VALUES:,} values) at {resolution} px; lower the width, depth or resolution"
        )


def _materialise(module: nn.Module) -> nn.Module:
    """Give a meta-device module real (zeroed) memory: values never change the counts."""
    module.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.zero_()
    return module


def _count_pieces(layout: list[Piece], resolution: int) -> ModelCount:
    _check_size(layout, resolution)
    pieces = _materialise(_Pieces([piece.module for piece in layout]))
    pieces.to(memory_format=torch.channels_last)
    inputs = tuple(torch.zeros(p.input_shape).to(memory_format=torch.channels_last) for p in layout)
    analysis = _analysis(pieces, inputs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_piece = analysis.by_module_and_operator()

    by_op: Counter = Counter()
    unsupported: Counter = Counter()
    parts: dict[str, PartCount] = {}
    for index, piece in enumerate(layout):
        ops = {op: n * piece.times for op, n in per_piece.get(f"pieces.{index}", {}).items()}
        by_op.update(ops)
        for op, n in analysis.unsupported_ops(f"pieces.{index}").items():
            unsupported[op] += n * piece.times
        macs = sum(ops.get(k, 0) for k in PAPER_OPS)
        previous = parts.get(piece.part, PartCount(piece.part, 0, 0, 0, piece.output_resolution))
        parts[piece.part] = PartCount(
            piece.part,
            previous.params + _params(piece.module) * piece.times,
            previous.macs + macs,
            previous.fvcore_total + sum(ops.values()),
            piece.output_resolution,
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
    """One plain fvcore pass over a whole, real model: the reference `count_model` must match.
    A lazy module's parameters are shaped first, so that their initialisation is not traced
    (it read 'fvcore counts 0 for: uniform_ x4')."""
    if any(nn.parameter.is_lazy(p) for p in model.parameters()):
        from scaler.training import shape_lazy_parameters

        shape_lazy_parameters(model, resolution)
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
