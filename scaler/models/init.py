"""How a proxy's network starts: every residual branch at zero.

A block whose last BatchNorm scale is 0 adds nothing to its shortcut at first, so a network
starts out computing what a shallower one does and its extra blocks only add what they learn
(Goyal et al. 2017, "Accurate, Large Minibatch SGD"; torchvision's `zero_init_residual`,
timm's `zero_init_last`). In a proxy of a few hundred steps this removes most of the
run-to-run noise: with the standard start, which classes a 5-epoch run learns at all varied
with the seed (benchmarks/proxy_probe.py with and without --no-zero-init).
"""

from __future__ import annotations

from collections.abc import Hashable

import torch
from torch import nn


def zero_init_residuals(model: nn.Module) -> int:
    """Call `zero_init_last()` on every block of `model` that has it (ours, and timm's blocks,
    which use the same name); other modules keep their initialisation. Returns how many
    blocks have it: 0 means the network starts as its own initialisation does
    (`no_zero_init_note`)."""
    blocks = [block for block in model.modules() if callable(getattr(block, "zero_init_last", None))]
    for block in blocks:
        block.zero_init_last()
    return len(blocks)


def no_zero_init_note(variant: str) -> str:
    """The words for a network asked to start at zero that has no block to do it (a factory's
    own modules): it trains from its own initialisation, which the option does not change."""
    return (f"--zero-init changes nothing in {variant}: none of its modules has a zero_init_last() method "
            "(as scaler's and timm's residual blocks do, to start their branch at zero), so it starts "
            "as its own initialisation does")


def zero_init_note(variant: str, spec: Hashable) -> str | None:
    """Where the network of `spec` (of base `variant`), asked to start at zero, has no block to
    do it, the words for it (`no_zero_init_note`); None otherwise. Only a factory's network is
    built to see, on the CPU and leaving the random generators as they were: every block of
    scaler's own families can start at zero."""
    from scaler.models.registry import family_of, is_reference
    from scaler.random_state import generators_kept

    if not is_reference(variant):
        return None
    with generators_kept(), torch.device("cpu"):
        blocks = zero_init_residuals(family_of(spec).build(spec))
    return None if blocks else no_zero_init_note(variant)
