"""How a proxy's network starts: every residual branch at zero.

A block whose last BatchNorm scale is 0 adds nothing to its shortcut at first, so a network
starts out computing what a shallower one does and its extra blocks only add what they learn
(Goyal et al. 2017, "Accurate, Large Minibatch SGD"; torchvision's `zero_init_residual`,
timm's `zero_init_last`). In a proxy of a few hundred steps this removes most of the
run-to-run noise: with the standard start, which classes a 5-epoch run learns at all varied
with the seed (benchmarks/proxy_probe.py with and without --no-zero-init).
"""

from __future__ import annotations

from torch import nn


def zero_init_residuals(model: nn.Module) -> None:
    """Call `zero_init_last()` on every block of `model` that has it (ours, and timm's blocks,
    which use the same name); other modules keep their initialisation."""
    for block in model.modules():
        if callable(getattr(block, "zero_init_last", None)):
            block.zero_init_last()
